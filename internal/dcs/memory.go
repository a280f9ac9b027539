package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Memory is the cluster's shared state kept in memory, for tests of the
// agent's flows: the same keys, revisions, transactions, leases, election
// and watches as Store on etcd, shared by every agent of a test cluster.
//
// Time is an input: leases expire by the clock given to NewMemory, checked
// at every operation and at Expire. Cut and Restore model a node cut off
// from the majority; RenewLeases stands for every agent's KeepAlive when
// a test moves the clock.
type Memory struct {
	prefix string
	clock  func() time.Time

	mu      sync.Mutex
	rev     int64 // one global revision, incremented per write
	kvs     map[string]memKV
	leases  map[clientv3.LeaseID]*memLease
	lastID  clientv3.LeaseID
	events  []memEvent    // every change in order, for the watches
	changed chan struct{} // closed and replaced at every change
	cut     map[string]bool
}

type memKV struct {
	value       []byte
	create, mod int64
	lease       clientv3.LeaseID // 0: none
}

type memLease struct {
	addr    string
	ttl     time.Duration
	expires time.Time // on the clock
	handle  *Lease    // what GrantLease returned, for RenewLeases
}

// memEvent is one key's change at revision rev.
type memEvent struct {
	key     string
	value   []byte
	rev     int64
	deleted bool
}

// memOp is one write of a transaction: a put, or a delete when del.
type memOp struct {
	key   string
	value []byte
	lease clientv3.LeaseID
	del   bool
}

// errNoLease is etcd's answer to a write under a lease it does not know.
var errNoLease = errors.New("requested lease not found")

// NewMemory returns an empty in-memory store of cluster name whose leases
// run on clock (time.Now when nil).
func NewMemory(name string, clock func() time.Time) *Memory {
	if clock == nil {
		clock = time.Now
	}
	return &Memory{
		prefix: "/pgfm/" + name + "/", clock: clock,
		kvs: map[string]memKV{}, leases: map[clientv3.LeaseID]*memLease{},
		changed: make(chan struct{}), cut: map[string]bool{},
	}
}

// Key layout: Store's.
func (m *Memory) keyInfo() string               { return m.prefix + "config" }
func (m *Memory) keyPrimary() string            { return m.prefix + "primary" }
func (m *Memory) keyAllowed(addr string) string { return m.prefix + "allowed/" + addr }
func (m *Memory) keyNode(addr string) string    { return m.prefix + "nodes/" + addr }
func (m *Memory) keyStatus(addr string) string  { return m.prefix + "status/" + addr }
func (m *Memory) keyClean(addr string) string   { return m.prefix + "clean-stop/" + addr }
func (m *Memory) keyStop() string               { return m.prefix + "stop" }
func (m *Memory) electionPrefix() string        { return m.prefix + "coordinator/" }

// begin locks the store for one operation, after expiring the leases the
// clock has run out; the caller unlocks.
func (m *Memory) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	m.expireLocked()
	return nil
}

// commitLocked applies ops as one transaction: one revision for all of
// them, none when nothing changes.
func (m *Memory) commitLocked(ops ...memOp) {
	next := m.rev + 1
	n := len(m.events)
	for _, op := range ops {
		kv, exists := m.kvs[op.key]
		if op.del {
			if exists {
				delete(m.kvs, op.key)
				m.events = append(m.events, memEvent{key: op.key, rev: next, deleted: true})
			}
			continue
		}
		if !exists {
			kv.create = next
		}
		kv.value, kv.mod, kv.lease = op.value, next, op.lease
		m.kvs[op.key] = kv
		m.events = append(m.events, memEvent{key: op.key, value: op.value, rev: next})
	}
	if len(m.events) > n {
		m.rev = next
		close(m.changed)
		m.changed = make(chan struct{})
	}
}

func memPut(key string, v any) memOp {
	b, _ := json.Marshal(v)
	return memOp{key: key, value: b}
}

func memDel(key string) memOp { return memOp{key: key, del: true} }

// createRev and modRev are etcd's CreateRevision and ModRevision of key:
// 0 when it does not exist.
func (m *Memory) createRev(key string) int64 { return m.kvs[key].create }
func (m *Memory) modRev(key string) int64    { return m.kvs[key].mod }

// expireLocked revokes every lease whose time ran out, each with its keys
// in one revision, as etcd's lessor does.
func (m *Memory) expireLocked() {
	now := m.clock()
	for _, id := range m.sortedLeases() {
		if !now.Before(m.leases[id].expires) {
			m.revokeLocked(id)
		}
	}
}

func (m *Memory) sortedLeases() []clientv3.LeaseID {
	ids := make([]clientv3.LeaseID, 0, len(m.leases))
	for id := range m.leases {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (m *Memory) revokeLocked(id clientv3.LeaseID) {
	delete(m.leases, id)
	var ops []memOp
	for _, k := range m.sortedKeys("") {
		if m.kvs[k].lease == id {
			ops = append(ops, memDel(k))
		}
	}
	m.commitLocked(ops...)
}

// sortedKeys lists the keys under prefix in etcd's order.
func (m *Memory) sortedKeys(prefix string) []string {
	var keys []string
	for k := range m.kvs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Expire revokes the leases that the clock has run out now, for tests
// that move the clock and want the watches to see it at once (every
// operation does it anyway).
func (m *Memory) Expire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked()
}

// Cut stops the renewals of addr's leases, as for a node cut off from
// the majority: its lease runs out on the clock and expires ttl after its
// last renewal. Its other requests still succeed.
func (m *Memory) Cut(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cut[addr] = true
}

// Restore undoes Cut.
func (m *Memory) Restore(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cut, addr)
}

// RenewLeases renews every live lease of a node that is not cut, through
// its Lease as its KeepAlive would, so that a test moving the clock in
// steps keeps the others' leases alive.
func (m *Memory) RenewLeases(ctx context.Context) {
	m.mu.Lock()
	m.expireLocked()
	var ls []*Lease
	for _, id := range m.sortedLeases() {
		if l := m.leases[id]; !m.cut[l.addr] {
			ls = append(ls, l.handle)
		}
	}
	m.mu.Unlock()
	for _, l := range ls {
		if changed, err := l.renew(ctx, time.Second); err == nil && changed {
			_, _ = l.renew(ctx, time.Second) // the first renewal only reads the term
		}
	}
}

// onWallClock maps t on the store's clock onto the wall clock, keeping its
// distance from now.
func (m *Memory) onWallClock(t time.Time) time.Time { return t.Add(time.Since(m.clock())) }

// GrantLease grants a lease of ttl rounded up to whole seconds, as etcd.
func (m *Memory) GrantLease(ctx context.Context, ttl time.Duration, addr string) (*Lease, error) {
	if err := m.begin(ctx); err != nil {
		return nil, fmt.Errorf("dcs: grant lease: %w", err)
	}
	defer m.mu.Unlock()
	sent := m.clock()
	granted := time.Duration(int64(ttl.Seconds()+0.999)) * time.Second
	m.lastID++
	l := &Lease{mem: m, id: m.lastID, ttl: granted, probeKey: m.keyStatus(addr), validUntil: sent.Add(granted)}
	m.leases[l.id] = &memLease{addr: addr, ttl: granted, expires: sent.Add(granted), handle: l}
	return l, nil
}

// keepAliveOnce renews lease id for its TTL from now on the clock; it
// fails without renewing while its node is cut.
func (m *Memory) keepAliveOnce(ctx context.Context, id clientv3.LeaseID) (time.Duration, error) {
	if err := m.begin(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	l, ok := m.leases[id]
	switch {
	case !ok:
		return 0, ErrLeaseLost
	case m.cut[l.addr]:
		return 0, fmt.Errorf("dcs: %s is cut off: %w", l.addr, context.DeadlineExceeded)
	}
	l.expires = m.clock().Add(l.ttl)
	return l.ttl, nil
}

// term is the raft term a confirming read is answered in: one leader,
// for ever.
func (m *Memory) term(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return 1, nil
}

func (m *Memory) revoke(ctx context.Context, id clientv3.LeaseID) error {
	if err := m.begin(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.leases[id]; !ok {
		return fmt.Errorf("dcs: revoke: %w", errNoLease)
	}
	m.revokeLocked(id)
	return nil
}

// liveLease is the lease l holds in this store, if it is still alive.
func (m *Memory) liveLease(l *Lease) (clientv3.LeaseID, bool) {
	if l == nil || l.mem != m {
		return 0, false
	}
	_, ok := m.leases[l.id]
	return l.id, ok
}

// Close does nothing: the memory is the cluster's, shared by its agents,
// and outlives each of them.
func (m *Memory) Close() error { return nil }

// Revision is the store's current revision.
func (m *Memory) Revision(ctx context.Context) (int64, error) {
	if err := m.begin(ctx); err != nil {
		return 0, fmt.Errorf("dcs: read revision: %w", err)
	}
	defer m.mu.Unlock()
	return m.rev, nil
}

// Campaign waits until the campaign of l, made for addr, is the oldest
// live one (the lowest create revision, as concurrency.Election), or until
// ctx ends, which withdraws it. It fails once l expires.
func (m *Memory) Campaign(ctx context.Context, l *Lease, addr string) (*Election, error) {
	if err := m.begin(ctx); err != nil {
		return nil, fmt.Errorf("dcs: campaign: %w", err)
	}
	id, ok := m.liveLease(l)
	if !ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("dcs: campaign: %w", errNoLease)
	}
	key := fmt.Sprintf("%s%x", m.electionPrefix(), id)
	if kv, exists := m.kvs[key]; !exists || string(kv.value) != addr {
		m.commitLocked(memOp{key: key, value: []byte(addr), lease: id})
	}
	rev := m.createRev(key)
	m.mu.Unlock()
	for {
		if err := m.begin(ctx); err != nil {
			m.withdraw(key, rev)
			return nil, fmt.Errorf("dcs: campaign: %w", err)
		}
		if m.createRev(key) != rev {
			m.mu.Unlock()
			return nil, fmt.Errorf("dcs: campaign: the campaign key vanished: %w", ErrLeaseLost)
		}
		if k, _ := m.firstCampaign(); k == key {
			m.mu.Unlock()
			return &Election{key: key, rev: rev}, nil
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-ch:
		}
	}
}

// withdraw deletes a campaign key unless another campaign replaced it.
func (m *Memory) withdraw(key string, rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.createRev(key) == rev {
		m.commitLocked(memDel(key))
	}
}

// firstCampaign is the live campaign key with the lowest create revision.
func (m *Memory) firstCampaign() (key string, kv memKV) {
	for _, k := range m.sortedKeys(m.electionPrefix()) {
		if c := m.kvs[k]; key == "" || c.create < kv.create {
			key, kv = k, c
		}
	}
	return key, kv
}

// Coordinator is the address of the elected coordinator ("" when none).
func (m *Memory) Coordinator(ctx context.Context) (string, error) {
	if err := m.begin(ctx); err != nil {
		return "", fmt.Errorf("dcs: read coordinator: %w", err)
	}
	defer m.mu.Unlock()
	_, kv := m.firstCampaign()
	return string(kv.value), nil
}

// PublishStatus writes the agent's own status under its lease.
func (m *Memory) PublishStatus(ctx context.Context, l *Lease, st cluster.MemberStatus) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: publish status: %w", err)
	}
	defer m.mu.Unlock()
	id, ok := m.liveLease(l)
	if !ok {
		return fmt.Errorf("dcs: publish status: %w", errNoLease)
	}
	op := memPut(m.keyStatus(st.Address), st)
	op.lease = id
	m.commitLocked(op)
	return nil
}

// HasStatus reports whether addr's agent has a published status.
func (m *Memory) HasStatus(ctx context.Context, addr string) (bool, error) {
	if err := m.begin(ctx); err != nil {
		return false, fmt.Errorf("dcs: read status: %w", err)
	}
	defer m.mu.Unlock()
	_, ok := m.kvs[m.keyStatus(addr)]
	return ok, nil
}

// StatusCount counts the published statuses (live agents).
func (m *Memory) StatusCount(ctx context.Context) (int64, error) {
	if err := m.begin(ctx); err != nil {
		return 0, fmt.Errorf("dcs: count statuses: %w", err)
	}
	defer m.mu.Unlock()
	return int64(len(m.sortedKeys(m.prefix + "status/"))), nil
}

// InitPrimary writes the first primary record unless one exists.
func (m *Memory) InitPrimary(ctx context.Context, p Primary) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: init primary record: %w", err)
	}
	defer m.mu.Unlock()
	if m.createRev(m.keyPrimary()) == 0 {
		m.commitLocked(memPut(m.keyPrimary(), p))
	}
	return nil
}

// UpdatePrimary replaces the record if it is still at rev (0: absent) and
// every guard holds. It reports whether it did.
func (m *Memory) UpdatePrimary(ctx context.Context, rev int64, p Primary, guards ...Guard) (bool, error) {
	return m.UpdatePrimaryAndSync(ctx, rev, p, nil, guards...)
}

// UpdatePrimaryAndSync is UpdatePrimary that also writes the synchronous
// set sync (when not nil) in the same transaction.
func (m *Memory) UpdatePrimaryAndSync(ctx context.Context, rev int64, p Primary, sync *Sync, guards ...Guard) (bool, error) {
	if err := m.begin(ctx); err != nil {
		return false, fmt.Errorf("dcs: update primary record: %w", err)
	}
	defer m.mu.Unlock()
	if m.modRev(m.keyPrimary()) != rev {
		return false, nil
	}
	for _, g := range guards {
		if m.createRev(g.key) != g.rev {
			return false, nil
		}
	}
	ops := []memOp{memPut(m.keyPrimary(), p)}
	if sync != nil {
		ops = append(ops, memPut(m.keySync(), sync))
	}
	m.commitLocked(ops...)
	return true, nil
}

// MarkCleanStop records that addr's agent stopped on purpose.
func (m *Memory) MarkCleanStop(ctx context.Context, addr string) error {
	if err := m.begin(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.commitLocked(memOp{key: m.keyClean(addr), value: []byte(m.clock().UTC().Format(time.RFC3339Nano))})
	return nil
}

// ClearCleanStop removes the marker when the agent starts.
func (m *Memory) ClearCleanStop(ctx context.Context, addr string) error {
	if err := m.begin(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.commitLocked(memDel(m.keyClean(addr)))
	return nil
}

// RequestStop asks every agent to stop (stop-cluster).
func (m *Memory) RequestStop(ctx context.Context, by string) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: request stop: %w", err)
	}
	defer m.mu.Unlock()
	m.commitLocked(memPut(m.keyStop(), StopRequest{At: m.clock().UTC(), By: by}))
	return nil
}

// Bootstrap creates the cluster's identity, allows and registers its first
// member, in one transaction that fails if the cluster already exists.
func (m *Memory) Bootstrap(ctx context.Context, info Info, first cluster.Registration) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: bootstrap: %w", err)
	}
	defer m.mu.Unlock()
	if m.createRev(m.keyInfo()) != 0 {
		return ErrExists
	}
	m.commitLocked(
		memPut(m.keyInfo(), info),
		memPut(m.keyAllowed(first.Address), Allowed{Address: first.Address, AddedAt: info.CreatedAt, AddedBy: first.Address}),
		memPut(m.keyNode(first.Address), first),
	)
	return nil
}

// Info reads the cluster's identity; ErrNoCluster before Bootstrap.
func (m *Memory) Info(ctx context.Context) (Info, error) {
	var info Info
	if err := m.begin(ctx); err != nil {
		return info, fmt.Errorf("dcs: read cluster info: %w", err)
	}
	defer m.mu.Unlock()
	kv, ok := m.kvs[m.keyInfo()]
	if !ok {
		return info, ErrNoCluster
	}
	if err := json.Unmarshal(kv.value, &info); err != nil {
		return info, fmt.Errorf("dcs: cluster info: %w", err)
	}
	return info, nil
}

// Allow adds addr to the allowed node host list (idempotent).
func (m *Memory) Allow(ctx context.Context, addr, by string) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: allow %s: %w", addr, err)
	}
	defer m.mu.Unlock()
	if m.createRev(m.keyAllowed(addr)) == 0 {
		m.commitLocked(memPut(m.keyAllowed(addr), Allowed{Address: addr, AddedAt: m.clock().UTC(), AddedBy: by}))
	}
	return nil
}

// IsAllowed reports whether addr is on the allowed list.
func (m *Memory) IsAllowed(ctx context.Context, addr string) (bool, error) {
	if err := m.begin(ctx); err != nil {
		return false, fmt.Errorf("dcs: read allowed list: %w", err)
	}
	defer m.mu.Unlock()
	_, ok := m.kvs[m.keyAllowed(addr)]
	return ok, nil
}

// Disallow removes addr from the allowed list and its registration; it
// reports whether anything was removed.
func (m *Memory) Disallow(ctx context.Context, addr string) (bool, error) {
	if err := m.begin(ctx); err != nil {
		return false, fmt.Errorf("dcs: disallow %s: %w", addr, err)
	}
	defer m.mu.Unlock()
	before := m.rev
	m.commitLocked(memDel(m.keyAllowed(addr)), memDel(m.keyNode(addr)))
	return m.rev != before, nil
}

// Register records a member permanently (until disallow-node).
func (m *Memory) Register(ctx context.Context, reg cluster.Registration) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: register %s: %w", reg.Address, err)
	}
	defer m.mu.Unlock()
	m.commitLocked(memPut(m.keyNode(reg.Address), reg))
	return nil
}

// Registration reads one member's registration; ok is false when absent.
func (m *Memory) Registration(ctx context.Context, addr string) (cluster.Registration, bool, error) {
	var reg cluster.Registration
	if err := m.begin(ctx); err != nil {
		return reg, false, fmt.Errorf("dcs: read registration: %w", err)
	}
	defer m.mu.Unlock()
	kv, ok := m.kvs[m.keyNode(addr)]
	if !ok {
		return reg, false, nil
	}
	if err := json.Unmarshal(kv.value, &reg); err != nil {
		return reg, false, fmt.Errorf("dcs: registration of %s: %w", addr, err)
	}
	return reg, true, nil
}

// Snapshot reads the cluster's keys at one revision, as Store.Snapshot.
func (m *Memory) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Status: map[string]cluster.MemberStatus{}, CleanStops: map[string]bool{}, Priorities: map[string]int{}}
	if err := m.begin(ctx); err != nil {
		return snap, fmt.Errorf("dcs: read cluster state: %w", err)
	}
	defer m.mu.Unlock()
	snap.Revision = m.rev
	for _, k := range m.sortedKeys(m.prefix) {
		kv := m.kvs[k]
		if err := snap.add(strings.TrimPrefix(k, m.prefix), kv.value, kv.mod); err != nil {
			snap.Problems = append(snap.Problems, fmt.Sprintf("key %s: %v", k, err))
		}
	}
	sort.Slice(snap.Allowed, func(i, j int) bool { return snap.Allowed[i].Address < snap.Allowed[j].Address })
	sort.Slice(snap.Registrations, func(i, j int) bool { return snap.Registrations[i].Address < snap.Registrations[j].Address })
	return snap, nil
}

// add decodes one key (relative to the cluster's prefix) into the
// snapshot, as Store.Snapshot does.
func (snap *Snapshot) add(key string, value []byte, mod int64) error {
	// Records are decoded into a variable of their own, kept only when
	// whole: json.Unmarshal fills the fields it can before it reports an
	// error, and a half-read primary record would name a node and an
	// epoch with PrimaryRev 0 ("no primary record").
	switch {
	case key == "config":
		var info Info
		err := json.Unmarshal(value, &info)
		if err == nil {
			snap.Info = info
		}
		return err
	case key == "primary":
		var p Primary
		err := json.Unmarshal(value, &p)
		if err == nil {
			snap.Primary, snap.PrimaryRev = p, mod
		}
		return err
	case strings.HasPrefix(key, "clean-stop/"):
		snap.CleanStops[strings.TrimPrefix(key, "clean-stop/")] = true
	case key == "sync":
		rec, err := decodeSync(value)
		snap.Sync, snap.SyncRev = rec, mod
		return err
	case key == "maintenance":
		mark, err := decodeMaintenance(value)
		snap.Maintenance = mark
		return err
	case strings.HasPrefix(key, "priority/"):
		p, err := parsePriority(value)
		if err == nil {
			snap.Priorities[strings.TrimPrefix(key, "priority/")] = p
		}
		return err
	case strings.HasPrefix(key, "allowed/"):
		var a Allowed
		err := json.Unmarshal(value, &a)
		if err == nil {
			snap.Allowed = append(snap.Allowed, a)
		}
		return err
	case strings.HasPrefix(key, "nodes/"):
		var reg cluster.Registration
		err := json.Unmarshal(value, &reg)
		if err == nil {
			snap.Registrations = append(snap.Registrations, reg)
		}
		return err
	case strings.HasPrefix(key, "status/"):
		var st cluster.MemberStatus
		addr := strings.TrimPrefix(key, "status/")
		if err := json.Unmarshal(value, &st); err != nil {
			return err
		}
		if st.Address != addr {
			return fmt.Errorf("status names address %q", st.Address)
		}
		snap.Status[addr] = st
	}
	return nil
}

// watch calls fn with each later revision's events on keys that match,
// from the events after index from, until ctx ends or fn says stop.
func (m *Memory) watch(ctx context.Context, from int, match func(key string) bool, fn func(evs []memEvent) (stop bool)) error {
	for {
		m.mu.Lock()
		evs := m.events[from:]
		from = len(m.events)
		ch := m.changed
		m.mu.Unlock()
		for len(evs) > 0 {
			n := 1
			for n < len(evs) && evs[n].rev == evs[0].rev {
				n++
			}
			var mine []memEvent
			for _, e := range evs[:n] {
				if match(e.key) {
					mine = append(mine, e)
				}
			}
			if len(mine) > 0 && fn(mine) {
				return nil
			}
			evs = evs[n:]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// WatchStatuses calls fn whenever any agent publishes or loses its
// status, until ctx ends.
func (m *Memory) WatchStatuses(ctx context.Context, fn func()) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: watch statuses: %w", err)
	}
	from := len(m.events)
	m.mu.Unlock()
	status := m.prefix + "status/"
	return m.watch(ctx, from, func(k string) bool { return strings.HasPrefix(k, status) }, func([]memEvent) bool {
		fn()
		return false
	})
}

// WatchPrimary calls fn with the primary record as it is now, then with
// every later version, in order, until ctx ends; a version committed
// while fn runs is delivered too.
func (m *Memory) WatchPrimary(ctx context.Context, fn func(p Primary, rev int64)) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: read primary record: %w", err)
	}
	kv, ok := m.kvs[m.keyPrimary()]
	from := len(m.events)
	m.mu.Unlock()
	if ok {
		var p Primary
		if json.Unmarshal(kv.value, &p) == nil {
			fn(p, kv.mod)
		}
	}
	key := m.keyPrimary()
	return m.watch(ctx, from, func(k string) bool { return k == key }, func(evs []memEvent) bool {
		for _, e := range evs {
			var p Primary
			if !e.deleted && json.Unmarshal(e.value, &p) == nil {
				fn(p, e.rev)
			}
		}
		return false
	})
}

// WatchMembership calls ev.Changed(nil), then ev.Stop and returns if a
// stop request newer than after exists; else it reports every later
// change of the registrations (the deleted ones as removed) until ctx
// ends or a stop request, after which it calls ev.Stop and returns nil.
func (m *Memory) WatchMembership(ctx context.Context, after int64, ev MembershipEvents) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: read stop request: %w", err)
	}
	stopRev := m.modRev(m.keyStop())
	from := len(m.events)
	m.mu.Unlock()
	ev.Changed(nil)
	if stopRev > after {
		ev.Stop()
		return nil
	}
	nodes, stop := m.prefix+"nodes/", m.keyStop()
	match := func(k string) bool { return k == stop || strings.HasPrefix(k, nodes) }
	return m.watch(ctx, from, match, func(evs []memEvent) bool {
		var removed []string
		changed, stopped := false, false
		for _, e := range evs {
			switch {
			case e.key == stop:
				stopped = stopped || !e.deleted
			case e.deleted:
				changed = true
				removed = append(removed, strings.TrimPrefix(e.key, nodes))
			default:
				changed = true
			}
		}
		if changed {
			ev.Changed(removed)
		}
		if stopped {
			ev.Stop()
		}
		return stopped
	})
}
