package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Store reads and writes one cluster's keys.
type Store struct {
	cli    *clientv3.Client
	prefix string // "/pgfm/CLUSTER/"
}

// New returns the store of cluster name on cli.
func New(cli *clientv3.Client, name string) *Store {
	return &Store{cli: cli, prefix: "/pgfm/" + name + "/"}
}

// Key layout. Spec (what the cluster should be) lives apart from status
// (what agents report): config, allowed and nodes are spec; status is
// written only by each agent about itself, under its lease.
func (s *Store) keyInfo() string               { return s.prefix + "config" }
func (s *Store) keyAllowed(addr string) string { return s.prefix + "allowed/" + addr }
func (s *Store) keyNode(addr string) string    { return s.prefix + "nodes/" + addr }
func (s *Store) keyStatus(addr string) string  { return s.prefix + "status/" + addr }
func (s *Store) keyStop() string               { return s.prefix + "stop" }

// ElectionPrefix is where the coordinator election runs.
func (s *Store) ElectionPrefix() string { return s.prefix + "coordinator" }

// NodesPrefix is the prefix of registrations, for watching membership.
func (s *Store) NodesPrefix() string { return s.prefix + "nodes/" }

// Info is the cluster's identity, written once at bootstrap.
type Info struct {
	Name      string    `json:"name"`
	Token     string    `json:"token"` // etcd's initial cluster token
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// Allowed is one entry of the allowed node host list.
type Allowed struct {
	Address string    `json:"address"`
	AddedAt time.Time `json:"added_at"`
	AddedBy string    `json:"added_by"`
}

// StopRequest asks every agent to exit (stop-cluster).
type StopRequest struct {
	At time.Time `json:"at"`
	By string    `json:"by"`
}

// ErrExists: Bootstrap found the cluster already created.
var ErrExists = errors.New("cluster already initialised")

// ErrNoCluster: the cluster was not created in etcd (no Bootstrap yet).
var ErrNoCluster = errors.New("dcs: cluster info missing: the cluster was not created yet")

// Bootstrap creates the cluster's identity, allows and registers its first
// member, in one transaction that fails if the cluster already exists.
func (s *Store) Bootstrap(ctx context.Context, info Info, first cluster.Registration) error {
	infoJSON, _ := json.Marshal(info)
	allowJSON, _ := json.Marshal(Allowed{Address: first.Address, AddedAt: info.CreatedAt, AddedBy: first.Address})
	regJSON, _ := json.Marshal(first)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.keyInfo()), "=", 0)).
		Then(
			clientv3.OpPut(s.keyInfo(), string(infoJSON)),
			clientv3.OpPut(s.keyAllowed(first.Address), string(allowJSON)),
			clientv3.OpPut(s.keyNode(first.Address), string(regJSON)),
		).Commit()
	if err != nil {
		return fmt.Errorf("dcs: bootstrap: %w", err)
	}
	if !resp.Succeeded {
		return ErrExists
	}
	return nil
}

// Info reads the cluster's identity.
func (s *Store) Info(ctx context.Context) (Info, error) {
	var info Info
	r, err := s.cli.Get(ctx, s.keyInfo())
	if err != nil {
		return info, fmt.Errorf("dcs: read cluster info: %w", err)
	}
	if len(r.Kvs) == 0 {
		return info, ErrNoCluster
	}
	if err := json.Unmarshal(r.Kvs[0].Value, &info); err != nil {
		return info, fmt.Errorf("dcs: cluster info: %w", err)
	}
	return info, nil
}

// Allow adds addr to the allowed node host list (idempotent).
func (s *Store) Allow(ctx context.Context, addr, by string) error {
	b, _ := json.Marshal(Allowed{Address: addr, AddedAt: time.Now().UTC(), AddedBy: by})
	err := retryDropped(ctx, func() error {
		_, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.keyAllowed(addr)), "=", 0)).
			Then(clientv3.OpPut(s.keyAllowed(addr), string(b))).Commit()
		return err
	})
	if err != nil {
		return fmt.Errorf("dcs: allow %s: %w", addr, err)
	}
	return nil
}

// IsAllowed reports whether addr is on the allowed list.
func (s *Store) IsAllowed(ctx context.Context, addr string) (bool, error) {
	r, err := s.cli.Get(ctx, s.keyAllowed(addr), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("dcs: read allowed list: %w", err)
	}
	return r.Count > 0, nil
}

// Disallow removes addr from the allowed list and its registration, so its
// agent learns it was removed. It reports whether anything was removed.
func (s *Store) Disallow(ctx context.Context, addr string) (bool, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpDelete(s.keyAllowed(addr)),
		clientv3.OpDelete(s.keyNode(addr)),
	).Commit()
	if err != nil {
		return false, fmt.Errorf("dcs: disallow %s: %w", addr, err)
	}
	n := resp.Responses[0].GetResponseDeleteRange().Deleted + resp.Responses[1].GetResponseDeleteRange().Deleted
	return n > 0, nil
}

// Register records a member permanently (until disallow-node).
func (s *Store) Register(ctx context.Context, reg cluster.Registration) error {
	b, _ := json.Marshal(reg)
	if err := retryDropped(ctx, func() error { _, err := s.cli.Put(ctx, s.keyNode(reg.Address), string(b)); return err }); err != nil {
		return fmt.Errorf("dcs: register %s: %w", reg.Address, err)
	}
	return nil
}

// Registration reads one member's registration; ok is false when absent.
func (s *Store) Registration(ctx context.Context, addr string) (cluster.Registration, bool, error) {
	var reg cluster.Registration
	r, err := s.cli.Get(ctx, s.keyNode(addr))
	if err != nil {
		return reg, false, fmt.Errorf("dcs: read registration: %w", err)
	}
	if len(r.Kvs) == 0 {
		return reg, false, nil
	}
	if err := json.Unmarshal(r.Kvs[0].Value, &reg); err != nil {
		return reg, false, fmt.Errorf("dcs: registration of %s: %w", addr, err)
	}
	return reg, true, nil
}

// PublishStatus writes the agent's own status under its lease.
func (s *Store) PublishStatus(ctx context.Context, l *Lease, st cluster.MemberStatus) error {
	b, _ := json.Marshal(st)
	if _, err := s.cli.Put(ctx, s.keyStatus(st.Address), string(b), clientv3.WithLease(l.id)); err != nil {
		return fmt.Errorf("dcs: publish status: %w", err)
	}
	return nil
}

// RequestStop asks every agent to stop (stop-cluster).
func (s *Store) RequestStop(ctx context.Context, by string) error {
	b, _ := json.Marshal(StopRequest{At: time.Now().UTC(), By: by})
	if _, err := s.cli.Put(ctx, s.keyStop(), string(b)); err != nil {
		return fmt.Errorf("dcs: request stop: %w", err)
	}
	return nil
}

// StopKey is the key stop-cluster writes, for watching.
func (s *Store) StopKey() string { return s.keyStop() }

// Snapshot is everything an agent needs to describe the cluster, read at
// one revision.
type Snapshot struct {
	Revision      int64
	Info          Info
	Allowed       []Allowed
	Registrations []cluster.Registration
	Status        map[string]cluster.MemberStatus
	Primary       Primary
	PrimaryRev    int64 // 0: no primary record
	CleanStops    map[string]bool
	// Maintenance is set while maintenance mode is on.
	Maintenance *Maintenance
	// Priorities are the failover priorities set with set-priority, by
	// node address: 1 first, 0 never promoted.
	Priorities map[string]int
	// Sync is the synchronous set (synchronous.mode); nil when none.
	Sync    *Sync
	SyncRev int64
	// Problems lists records that could not be decoded; they are skipped,
	// never fatal, so one bad value cannot blind the cluster.
	Problems []string
}

// Snapshot reads the cluster's keys in one request.
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Status: map[string]cluster.MemberStatus{}, CleanStops: map[string]bool{}, Priorities: map[string]int{}}
	r, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return snap, fmt.Errorf("dcs: read cluster state: %w", err)
	}
	snap.Revision = r.Header.Revision
	for _, kv := range r.Kvs {
		if err := snap.add(strings.TrimPrefix(string(kv.Key), s.prefix), kv.Value, kv.ModRevision); err != nil {
			snap.Problems = append(snap.Problems, fmt.Sprintf("key %s: %v", kv.Key, err))
		}
	}
	sort.Slice(snap.Allowed, func(i, j int) bool { return snap.Allowed[i].Address < snap.Allowed[j].Address })
	sort.Slice(snap.Registrations, func(i, j int) bool { return snap.Registrations[i].Address < snap.Registrations[j].Address })
	return snap, nil
}

// Coordinator is the address of the elected coordinator ("" when none):
// the campaign key with the lowest create revision wins, as in
// concurrency.Election.
func (s *Store) Coordinator(ctx context.Context) (string, error) {
	r, err := s.cli.Get(ctx, s.ElectionPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("dcs: read coordinator: %w", err)
	}
	if len(r.Kvs) == 0 {
		return "", nil
	}
	return string(r.Kvs[0].Value), nil
}

// StatusKey is the key an agent's status lives under.
func (s *Store) StatusKey(addr string) string { return s.keyStatus(addr) }

// NodeKey is the key of an agent's registration.
func (s *Store) NodeKey(addr string) string { return s.keyNode(addr) }

// StatusCount counts the published statuses (live agents).
func (s *Store) StatusCount(ctx context.Context) (int64, error) {
	r, err := s.cli.Get(ctx, s.prefix+"status/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("dcs: count statuses: %w", err)
	}
	return r.Count, nil
}
