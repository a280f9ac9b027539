package dcs

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/testenv"
)

// backend is what Store and Memory have in common (the agent's store).
type backend interface {
	Revision(ctx context.Context) (int64, error)
	GrantLease(ctx context.Context, ttl time.Duration, addr string) (*Lease, error)
	Campaign(ctx context.Context, l *Lease, addr string) (*Election, error)
	Coordinator(ctx context.Context) (string, error)
	PublishStatus(ctx context.Context, l *Lease, st cluster.MemberStatus) error
	HasStatus(ctx context.Context, addr string) (bool, error)
	StatusCount(ctx context.Context) (int64, error)
	WatchStatuses(ctx context.Context, fn func()) error
	InitPrimary(ctx context.Context, p Primary) error
	UpdatePrimary(ctx context.Context, rev int64, p Primary, guards ...Guard) (bool, error)
	WatchPrimary(ctx context.Context, fn func(p Primary, rev int64)) error
	Snapshot(ctx context.Context) (Snapshot, error)
	Bootstrap(ctx context.Context, info Info, first cluster.Registration) error
	Info(ctx context.Context) (Info, error)
	Allow(ctx context.Context, addr, by string) error
	IsAllowed(ctx context.Context, addr string) (bool, error)
	Disallow(ctx context.Context, addr string) (bool, error)
	Register(ctx context.Context, reg cluster.Registration) error
	Registration(ctx context.Context, addr string) (cluster.Registration, bool, error)
	WatchMembership(ctx context.Context, after int64, ev MembershipEvents) error
	MarkCleanStop(ctx context.Context, addr string) error
	ClearCleanStop(ctx context.Context, addr string) error
	RequestStop(ctx context.Context, by string) error
}

var (
	_ backend = (*Store)(nil)
	_ backend = (*Memory)(nil)
)

// TestMemoryMatchesStore runs each behaviour against etcd (Store) and
// against Memory: whatever a flow test learns on Memory holds on etcd.
func TestMemoryMatchesStore(t *testing.T) {
	cli := testenv.StartEtcd(t)
	cases := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s backend)
	}{
		{"Identity", behaveIdentity},
		{"OneRevisionPerWrite", behaveRevisions},
		{"PrimaryCompareAndSwap", behavePrimaryCAS},
		{"ElectionOrderAndGuards", behaveElection},
		{"StatusesLiveWithTheirLease", behaveStatuses},
		{"WatchPrimaryMissesNothing", behaveWatchPrimary},
		{"WatchMembership", behaveWatchMembership},
		{"Snapshot", behaveSnapshot},
	}
	for _, tc := range cases {
		for _, b := range []struct {
			name string
			new  func(name string) backend
		}{
			{"etcd", func(name string) backend { return New(cli, name) }},
			{"memory", func(name string) backend { return NewMemory(name, nil) }},
		} {
			t.Run(tc.name+"/"+b.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				tc.fn(t, ctx, b.new("m-"+strings.ToLower(tc.name)))
			})
		}
	}
}

func behaveIdentity(t *testing.T, ctx context.Context, s backend) {
	if _, err := s.Info(ctx); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("Info before Bootstrap: %v, want ErrNoCluster", err)
	}
	info := Info{Name: "c", Token: "tok", CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), CreatedBy: "10.0.0.1"}
	if err := s.Bootstrap(ctx, info, reg("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(ctx, Info{Name: "c", Token: "other"}, reg("10.0.0.2")); !errors.Is(err, ErrExists) {
		t.Fatalf("second Bootstrap: %v, want ErrExists", err)
	}
	if got, err := s.Info(ctx); err != nil || got != info {
		t.Fatalf("Info = %+v, %v; want %+v", got, err, info)
	}
	if ok, _ := s.IsAllowed(ctx, "10.0.0.2"); ok {
		t.Error("the refused bootstrap allowed its node")
	}
	if r, ok, err := s.Registration(ctx, "10.0.0.1"); err != nil || !ok || r != reg("10.0.0.1") {
		t.Errorf("Registration = %+v, %v, %v", r, ok, err)
	}
	if err := s.Allow(ctx, "10.0.0.5", "first"); err != nil {
		t.Fatal(err)
	}
	if err := s.Allow(ctx, "10.0.0.5", "second"); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, reg("10.0.0.5")); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	if len(snap.Allowed) != 2 || snap.Allowed[1].AddedBy != "first" {
		t.Errorf("allowed after two Allows: %+v; want the first kept", snap.Allowed)
	}
	if removed, err := s.Disallow(ctx, "10.0.0.5"); err != nil || !removed {
		t.Fatalf("Disallow = %v, %v; want true", removed, err)
	}
	if removed, err := s.Disallow(ctx, "10.0.0.5"); err != nil || removed {
		t.Errorf("second Disallow = %v, %v; want false", removed, err)
	}
	if _, ok, _ := s.Registration(ctx, "10.0.0.5"); ok {
		t.Error("still registered after Disallow")
	}
}

func behaveRevisions(t *testing.T, ctx context.Context, s backend) {
	step := func(what string, write func() error, want int64) {
		t.Helper()
		before, err := s.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		after, _ := s.Revision(ctx)
		if after-before != want {
			t.Errorf("%s moved the revision by %d, want %d", what, after-before, want)
		}
	}
	step("Bootstrap (three keys, one transaction)", func() error {
		return s.Bootstrap(ctx, Info{Name: "c"}, reg("10.0.0.1"))
	}, 1)
	step("Register", func() error { return s.Register(ctx, reg("10.0.0.2")) }, 1)
	step("Allow of an allowed address", func() error { return s.Allow(ctx, "10.0.0.1", "x") }, 0)
	step("Disallow (two keys, one transaction)", func() error {
		_, err := s.Disallow(ctx, "10.0.0.1")
		return err
	}, 1)
	step("ClearCleanStop without a marker", func() error { return s.ClearCleanStop(ctx, "10.0.0.9") }, 0)
	step("MarkCleanStop", func() error { return s.MarkCleanStop(ctx, "10.0.0.9") }, 1)
}

func behavePrimaryCAS(t *testing.T, ctx context.Context, s backend) {
	p1 := Primary{Node: "10.0.0.1", Epoch: 1, Phase: PhasePromoted}
	if err := s.InitPrimary(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if err := s.InitPrimary(ctx, Primary{Node: "10.0.0.9", Epoch: 9}); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	if snap.Primary != p1 || snap.PrimaryRev == 0 {
		t.Fatalf("after two InitPrimary: %+v at %d; want the first kept", snap.Primary, snap.PrimaryRev)
	}
	rev1 := snap.PrimaryRev
	p2 := Primary{Node: "10.0.0.2", Epoch: 2, Phase: PhasePromoting, Previous: "10.0.0.1"}
	for _, c := range []struct {
		name string
		rev  int64
		p    Primary
		want bool
	}{
		{"at the current revision", rev1, p2, true},
		{"at the revision it replaced", rev1, Primary{Node: "10.0.0.3", Epoch: 2}, false},
		{"as if there were none", 0, Primary{Node: "10.0.0.3", Epoch: 2}, false},
	} {
		ok, err := s.UpdatePrimary(ctx, c.rev, c.p)
		if err != nil || ok != c.want {
			t.Errorf("UpdatePrimary %s = %v, %v; want %v", c.name, ok, err, c.want)
		}
	}
	snap, _ = s.Snapshot(ctx)
	if snap.Primary != p2 || snap.PrimaryRev <= rev1 {
		t.Errorf("record %+v at %d; want %+v after %d", snap.Primary, snap.PrimaryRev, p2, rev1)
	}
}

// campaign starts a campaign and returns its result channel once its key
// is written (the coordinator key count grew), so the order is known.
func campaign(t *testing.T, ctx context.Context, s backend, l *Lease, addr string, keys int64) <-chan *Election {
	t.Helper()
	won := make(chan *Election, 1)
	go func() {
		el, err := s.Campaign(ctx, l, addr)
		if err != nil && ctx.Err() == nil {
			t.Errorf("campaign of %s: %v", addr, err)
		}
		won <- el
	}()
	for ctx.Err() == nil {
		if n := campaignKeys(t, ctx, s); n >= keys {
			return won
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the campaign of %s never wrote its key", addr)
	return nil
}

// campaignKeys counts the election's keys; the backends expose them only
// through Coordinator, so this reads them per backend.
func campaignKeys(t *testing.T, ctx context.Context, s backend) int64 {
	switch s := s.(type) {
	case *Store:
		r, err := s.cli.Get(ctx, s.ElectionPrefix()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return r.Count
	case *Memory:
		s.mu.Lock()
		defer s.mu.Unlock()
		return int64(len(s.sortedKeys(s.electionPrefix())))
	}
	t.Fatalf("unknown backend %T", s)
	return 0
}

func behaveElection(t *testing.T, ctx context.Context, s backend) {
	if c, err := s.Coordinator(ctx); err != nil || c != "" {
		t.Fatalf("Coordinator before any campaign = %q, %v", c, err)
	}
	if err := s.InitPrimary(ctx, Primary{Node: "10.0.0.1", Epoch: 1, Phase: PhasePromoted}); err != nil {
		t.Fatal(err)
	}
	l1, _ := s.GrantLease(ctx, 60*time.Second, "10.0.0.1")
	l2, _ := s.GrantLease(ctx, 60*time.Second, "10.0.0.2")
	l3, _ := s.GrantLease(ctx, 60*time.Second, "10.0.0.3")
	defer l2.Revoke(context.Background())
	defer l3.Revoke(context.Background())
	ctx, cancel := context.WithCancel(ctx) // ends the waiting campaigns first
	defer cancel()

	e1 := <-campaign(t, ctx, s, l1, "10.0.0.1", 1)
	if e1 == nil {
		t.Fatal("the first campaign did not win")
	}
	won2 := campaign(t, ctx, s, l2, "10.0.0.2", 2)
	won3 := campaign(t, ctx, s, l3, "10.0.0.3", 3)
	if c, _ := s.Coordinator(ctx); c != "10.0.0.1" {
		t.Errorf("Coordinator with two candidates waiting = %q, want 10.0.0.1", c)
	}
	select {
	case <-won2:
		t.Fatal("the second campaign won while the first stands")
	case <-won3:
		t.Fatal("the third campaign won while the first stands")
	case <-time.After(100 * time.Millisecond):
	}
	guard1 := e1.Guard()
	snap, _ := s.Snapshot(ctx)
	rev := snap.PrimaryRev

	// The first coordinator's lease ends: the second-oldest campaign wins,
	// and the first's guard no longer holds.
	if err := l1.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := <-won2
	if e2 == nil {
		t.Fatal("the second campaign did not win after the first's lease ended")
	}
	if c, _ := s.Coordinator(ctx); c != "10.0.0.2" {
		t.Errorf("Coordinator = %q, want 10.0.0.2", c)
	}
	if ok, err := s.UpdatePrimary(ctx, rev, Primary{Node: "10.0.0.3", Epoch: 2}, guard1); err != nil || ok {
		t.Errorf("update guarded by a lost election = %v, %v; want refused", ok, err)
	}
	if ok, err := s.UpdatePrimary(ctx, rev, Primary{Node: "10.0.0.2", Epoch: 2}, e2.Guard(), guard1); err != nil || ok {
		t.Errorf("update guarded by a held and a lost election = %v, %v; want refused", ok, err)
	}
	if ok, err := s.UpdatePrimary(ctx, rev, Primary{Node: "10.0.0.2", Epoch: 2}, e2.Guard()); err != nil || !ok {
		t.Errorf("update guarded by the standing election = %v, %v; want done", ok, err)
	}
	select {
	case <-won3:
		t.Fatal("the third campaign won while the second stands")
	default:
	}
}

func behaveStatuses(t *testing.T, ctx context.Context, s backend) {
	l1, _ := s.GrantLease(ctx, 60*time.Second, "10.0.0.1")
	l2, _ := s.GrantLease(ctx, 60*time.Second, "10.0.0.2")
	defer l2.Revoke(context.Background())
	for _, c := range []struct {
		l  *Lease
		st cluster.MemberStatus
	}{
		{l1, cluster.MemberStatus{Address: "10.0.0.1", Type: cluster.Primary}},
		{l2, cluster.MemberStatus{Address: "10.0.0.2", Type: cluster.Standby}},
	} {
		if err := s.PublishStatus(ctx, c.l, c.st); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.StatusCount(ctx); err != nil || n != 2 {
		t.Fatalf("StatusCount = %d, %v; want 2", n, err)
	}
	if err := l1.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HasStatus(ctx, "10.0.0.1"); err != nil || ok {
		t.Errorf("HasStatus after its lease was revoked = %v, %v", ok, err)
	}
	if ok, _ := s.HasStatus(ctx, "10.0.0.2"); !ok {
		t.Error("another lease's status vanished")
	}
	if err := s.PublishStatus(ctx, l1, cluster.MemberStatus{Address: "10.0.0.1"}); err == nil {
		t.Error("published under a revoked lease")
	}
}

// A failover committed between WatchPrimary's read and the start of its
// watch (here: by fn, on the read's version) is still delivered, and so
// is everything after it, in order.
func behaveWatchPrimary(t *testing.T, ctx context.Context, s backend) {
	if err := s.InitPrimary(ctx, Primary{Node: "10.0.0.1", Epoch: 1, Phase: PhasePromoted}); err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	var revs []int64
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	err := s.WatchPrimary(wctx, func(p Primary, rev int64) {
		seen, revs = append(seen, p.Epoch), append(revs, rev)
		switch p.Epoch {
		case 1, 2: // commit the next version from inside fn
			next := Primary{Node: "10.0.0.2", Epoch: p.Epoch + 1, Phase: PhasePromoting}
			if ok, err := s.UpdatePrimary(ctx, rev, next); err != nil || !ok {
				t.Errorf("commit epoch %d: %v %v", next.Epoch, ok, err)
				stop()
			}
		case 3:
			stop()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchPrimary returned %v, want the cancellation", err)
	}
	if !reflect.DeepEqual(seen, []uint64{1, 2, 3}) || revs[0] >= revs[1] || revs[1] >= revs[2] {
		t.Fatalf("epochs seen %v at revisions %v, want [1 2 3] at rising revisions", seen, revs)
	}
}

// membershipLog records MembershipEvents, safely for the watch's goroutine.
type membershipLog struct {
	mu     sync.Mutex
	events []string
}

func (m *membershipLog) add(s string) {
	m.mu.Lock()
	m.events = append(m.events, s)
	m.mu.Unlock()
}

func (m *membershipLog) get() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.events...)
}

func (m *membershipLog) handlers() MembershipEvents {
	return MembershipEvents{
		Changed: func(removed []string) { m.add("changed " + strings.Join(removed, ",")) },
		Stop:    func() { m.add("stop") },
	}
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func behaveWatchMembership(t *testing.T, ctx context.Context, s backend) {
	start, _ := s.Revision(ctx)
	var log membershipLog
	done := make(chan error, 1)
	go func() { done <- s.WatchMembership(ctx, start, log.handlers()) }()
	waitUntil(t, ctx, "the first Changed", func() bool { return len(log.get()) == 1 })
	// The watch may start just after the first Changed: write until seen.
	waitUntil(t, ctx, "a registration is reported", func() bool {
		_ = s.Register(ctx, reg("10.0.0.2"))
		return len(log.get()) > 1
	})
	if err := s.Allow(ctx, "10.0.0.3", "x"); err != nil { // not a registration: not reported
		t.Fatal(err)
	}
	if _, err := s.Disallow(ctx, "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the removal is reported", func() bool {
		ev := log.get()
		return ev[len(ev)-1] == "changed 10.0.0.2"
	})
	if err := s.RequestStop(ctx, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WatchMembership after a stop request = %v, want nil", err)
	}
	ev := log.get()
	if ev[0] != "changed " || ev[len(ev)-1] != "stop" || strings.Count(strings.Join(ev, "|"), "stop") != 1 {
		t.Errorf("events %q: want Changed(nil) first, Stop once at the end", ev)
	}

	// A stop request newer than after ends the next watch at once; one
	// not newer (from before the agent started) does not.
	rev, _ := s.Revision(ctx)
	var again membershipLog
	if err := s.WatchMembership(ctx, start, again.handlers()); err != nil {
		t.Fatal(err)
	}
	if got := again.get(); !reflect.DeepEqual(got, []string{"changed ", "stop"}) {
		t.Errorf("watch after an earlier stop request: %q, want Changed(nil) then Stop", got)
	}
	var later membershipLog
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := s.WatchMembership(wctx, rev, later.handlers()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("watch started after the stop request returned %v, want its context's end", err)
	}
	if got := later.get(); !reflect.DeepEqual(got, []string{"changed "}) {
		t.Errorf("watch started after the stop request: %q, want only Changed(nil)", got)
	}
}

func behaveSnapshot(t *testing.T, ctx context.Context, s backend) {
	if err := s.Bootstrap(ctx, Info{Name: "c", Token: "tok"}, reg("10.0.0.10")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.0.0.3", "10.0.0.2"} {
		_ = s.Allow(ctx, a, "test")
		_ = s.Register(ctx, reg(a))
	}
	l, _ := s.GrantLease(ctx, 60*time.Second, "10.0.0.2")
	defer l.Revoke(context.Background())
	if err := s.PublishStatus(ctx, l, cluster.MemberStatus{Address: "10.0.0.2", Type: cluster.Standby,
		DB: cluster.DBObservation{Up: true, InRecovery: true, ReplayLSN: 0x3000060}}); err != nil {
		t.Fatal(err)
	}
	_ = s.MarkCleanStop(ctx, "10.0.0.3")
	_ = s.InitPrimary(ctx, Primary{Node: "10.0.0.10", Epoch: 1, Phase: PhasePromoted})
	_ = s.RequestStop(ctx, "10.0.0.10")
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := s.Revision(ctx)
	var regs []string
	for _, r := range snap.Registrations {
		regs = append(regs, r.Address)
	}
	switch {
	case snap.Revision != rev:
		t.Errorf("Revision = %d, want %d", snap.Revision, rev)
	case !reflect.DeepEqual(regs, []string{"10.0.0.10", "10.0.0.2", "10.0.0.3"}):
		t.Errorf("registrations %q, want the key order", regs)
	case len(snap.Allowed) != 3 || snap.Info.Token != "tok" || snap.Primary.Node != "10.0.0.10" || snap.PrimaryRev == 0:
		t.Errorf("snapshot = %+v", snap)
	case len(snap.Status) != 1 || snap.Status["10.0.0.2"].DB.ReplayLSN != 0x3000060:
		t.Errorf("Status = %+v", snap.Status)
	case !reflect.DeepEqual(snap.CleanStops, map[string]bool{"10.0.0.3": true}) || len(snap.Problems) != 0:
		t.Errorf("CleanStops %v, Problems %q", snap.CleanStops, snap.Problems)
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newClocked(t *testing.T) (*Memory, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	return NewMemory("c", clock.Now), clock
}

// A lease lives on the store's clock: its holder's validity (as seen with
// time.Now) and the store's expiry both follow it, and its expiry removes
// its status and campaign in one revision.
func TestMemoryLeaseRunsOnTheClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, clock := newClocked(t)
	l, err := m.GrantLease(ctx, 2500*time.Millisecond, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if l.TTL() != 3*time.Second {
		t.Errorf("TTL = %s, want 3s (whole seconds, as etcd)", l.TTL())
	}
	if !l.Valid(time.Now().Add(2900*time.Millisecond)) || l.Valid(time.Now().Add(3100*time.Millisecond)) {
		t.Errorf("a fresh lease of 3s is valid until %s from now", time.Until(l.Until()))
	}
	if err := m.PublishStatus(ctx, l, cluster.MemberStatus{Address: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Campaign(ctx, l, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if left := time.Until(l.Until()); left < 900*time.Millisecond || left > time.Second {
		t.Errorf("after 2s on the clock the lease is valid for %s more, want 1s", left)
	}

	// A renewal counts from its send time on the clock.
	m.RenewLeases(ctx)
	if left := time.Until(l.Until()); left < 2900*time.Millisecond || left > 3*time.Second {
		t.Errorf("after a renewal the lease is valid for %s more, want 3s", left)
	}

	// Cut off: no renewal extends it, its own or RenewLeases'; it runs
	// out, then expires.
	m.Cut("10.0.0.1")
	clock.Advance(2 * time.Second)
	m.RenewLeases(ctx)
	if _, err := l.renew(ctx, time.Second); err != nil {
		t.Errorf("renewal while cut off: %v, want no error (the lease may still live)", err)
	}
	if left := time.Until(l.Until()); left > 1100*time.Millisecond {
		t.Errorf("a cut lease was renewed: valid for %s more, want 1s", left)
	}
	if ok, _ := m.HasStatus(ctx, "10.0.0.1"); !ok {
		t.Fatal("the status vanished before the lease's TTL ran out")
	}
	before, _ := m.Revision(ctx)
	clock.Advance(time.Second)
	m.Expire()
	after, _ := m.Revision(ctx)
	if after != before+1 {
		t.Errorf("the expiry moved the revision by %d, want 1 (status and campaign in one revision)", after-before)
	}
	if n, _ := m.StatusCount(ctx); n != 0 {
		t.Errorf("StatusCount after expiry = %d", n)
	}
	if c, _ := m.Coordinator(ctx); c != "" {
		t.Errorf("Coordinator after its lease expired = %q", c)
	}
	if _, err := l.renew(ctx, time.Second); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renewal of an expired lease: %v, want ErrLeaseLost", err)
	}
	m.Restore("10.0.0.1")
	if err := l.KeepAlive(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("KeepAlive of an expired lease: %v, want ErrLeaseLost", err)
	}
	if err := m.PublishStatus(ctx, l, cluster.MemberStatus{Address: "10.0.0.1"}); err == nil {
		t.Error("published under an expired lease")
	}
}

// The first renewal after the grant only reads the term (as on etcd); a
// renewal never shortens the validity.
func TestMemoryRenewalNeedsATerm(t *testing.T) {
	ctx := context.Background()
	m, clock := newClocked(t)
	l, _ := m.GrantLease(ctx, 3*time.Second, "10.0.0.1")
	granted := l.validUntil
	clock.Advance(time.Second)
	if changed, err := l.renew(ctx, time.Second); err != nil || !changed {
		t.Fatalf("first renewal: changed %v, %v; want a term change", changed, err)
	}
	if !l.validUntil.Equal(granted) {
		t.Errorf("the first renewal moved validity by %s", l.validUntil.Sub(granted))
	}
	if changed, err := l.renew(ctx, time.Second); err != nil || changed {
		t.Fatalf("second renewal: changed %v, %v", changed, err)
	}
	if want := clock.Now().Add(3 * time.Second); !l.validUntil.Equal(want) {
		t.Errorf("validity %s, want %s", l.validUntil, want)
	}
}

// A campaign waits for every older one to end, by expiry or by its
// context; a withdrawn campaign leaves no key behind.
func TestMemoryCampaign(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, clock := newClocked(t)
	l1, _ := m.GrantLease(ctx, 3*time.Second, "10.0.0.1")
	l2, _ := m.GrantLease(ctx, 5*time.Second, "10.0.0.2")
	l3, _ := m.GrantLease(ctx, 5*time.Second, "10.0.0.3")
	e1, err := m.Campaign(ctx, l1, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// Campaigning again with the same lease is the same campaign.
	if again, err := m.Campaign(ctx, l1, "10.0.0.1"); err != nil || *again != *e1 {
		t.Errorf("second campaign with the same lease = %+v, %v; want %+v", again, err, e1)
	}
	cctx, stop := context.WithCancel(ctx)
	withdrawn := campaign(t, cctx, m, l2, "10.0.0.2", 2)
	won3 := campaign(t, ctx, m, l3, "10.0.0.3", 3)
	stop()
	if el := <-withdrawn; el != nil {
		t.Fatal("a cancelled campaign won")
	}
	if n := campaignKeys(t, ctx, m); n != 2 {
		t.Errorf("%d campaign keys after a withdrawal, want 2", n)
	}
	clock.Advance(3 * time.Second) // l1 expires; l3 (5s) lives
	m.Expire()
	select {
	case el := <-won3:
		if el == nil {
			t.Fatal("the campaign failed")
		}
		if ok, _ := m.UpdatePrimary(ctx, 0, Primary{Node: "10.0.0.3", Epoch: 1}, e1.Guard()); ok {
			t.Error("the expired coordinator's guard held")
		}
		if ok, _ := m.UpdatePrimary(ctx, 0, Primary{Node: "10.0.0.3", Epoch: 1}, el.Guard()); !ok {
			t.Error("the new coordinator's guard did not hold")
		}
	case <-ctx.Done():
		t.Fatal("the waiting campaign did not win after the coordinator's lease expired")
	}
	if _, err := m.Campaign(ctx, l1, "10.0.0.1"); err == nil {
		t.Error("campaigned with an expired lease")
	}
}

// Status changes wake WatchStatuses, expiries too, until its context ends.
func TestMemoryWatchStatuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, clock := newClocked(t)
	var mu sync.Mutex
	calls := 0
	onCall := func() {}
	count := func() int { mu.Lock(); defer mu.Unlock(); return calls }
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- m.WatchStatuses(wctx, func() {
			mu.Lock()
			calls++
			f := onCall
			mu.Unlock()
			f()
		})
	}()
	l, _ := m.GrantLease(ctx, 3*time.Second, "10.0.0.1")
	waitUntil(t, ctx, "a status publication is seen", func() bool {
		_ = m.PublishStatus(ctx, l, cluster.MemberStatus{Address: "10.0.0.1"})
		return count() > 0
	})
	// Earlier publications may still be on their way: wait for the call
	// that sees no status.
	empty := make(chan struct{})
	var once sync.Once
	mu.Lock()
	onCall = func() {
		if n, _ := m.StatusCount(ctx); n == 0 {
			once.Do(func() { close(empty) })
		}
	}
	mu.Unlock()
	clock.Advance(3 * time.Second)
	m.Expire()
	select {
	case <-empty:
	case <-ctx.Done():
		t.Fatal("the expiry did not wake the status watch")
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchStatuses returned %v, want its context's end", err)
	}
}
