package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Phase is how far the named primary has got (cluster.Phase).
type Phase = cluster.Phase

const (
	PhasePromoting     = cluster.PhasePromoting
	PhasePromoted      = cluster.PhasePromoted
	PhaseFenceFailed   = cluster.PhaseFenceFailed
	PhasePromoteFailed = cluster.PhasePromoteFailed
)

// Primary is the primary record: who the cluster says is primary, named
// by which epoch. Every failover bumps the epoch in a transaction guarded
// by the old record, so two failovers can never both commit.
type Primary struct {
	Node     string      `json:"node"`
	Epoch    uint64      `json:"epoch"`
	Timeline uint32      `json:"timeline,omitempty"`
	Phase    Phase       `json:"phase"`
	Previous string      `json:"previous,omitempty"` // the failed primary
	Reason   string      `json:"reason,omitempty"`
	Since    time.Time   `json:"since"`
	Detail   string      `json:"detail,omitempty"` // why a phase failed
	LastLSN  cluster.LSN `json:"last_lsn"`         // the primary's last published position
	// Switchover: a planned role swap. The old primary stops cleanly and
	// reports its last WAL position, the new one promotes only once it has
	// replayed it, and the old one then starts as its standby.
	Switchover bool `json:"switchover,omitempty"`
	// NoScripts: the operator asked for no fence and post-promotion
	// scripts (promote -noscripts).
	NoScripts bool `json:"no_scripts,omitempty"`
}

func (s *Store) keyPrimary() string { return s.prefix + "primary" }

// PrimaryKey is the primary record's key, for watching.
func (s *Store) PrimaryKey() string { return s.keyPrimary() }

// ReadPrimary returns the primary record and its mod revision (the CAS
// token); ok is false when there is none yet.
func (s *Store) ReadPrimary(ctx context.Context) (p Primary, rev int64, ok bool, err error) {
	r, err := s.cli.Get(ctx, s.keyPrimary())
	if err != nil {
		return p, 0, false, fmt.Errorf("dcs: read primary record: %w", err)
	}
	if len(r.Kvs) == 0 {
		return p, 0, false, nil
	}
	if err := json.Unmarshal(r.Kvs[0].Value, &p); err != nil {
		return p, 0, false, fmt.Errorf("dcs: primary record: %w", err)
	}
	return p, r.Kvs[0].ModRevision, true, nil
}

// InitPrimary writes the first primary record unless one exists.
func (s *Store) InitPrimary(ctx context.Context, p Primary) error {
	b, _ := json.Marshal(p)
	_, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.keyPrimary()), "=", 0)).
		Then(clientv3.OpPut(s.keyPrimary(), string(b))).Commit()
	if err != nil {
		return fmt.Errorf("dcs: init primary record: %w", err)
	}
	return nil
}

// UpdatePrimary replaces the record if it is still at rev and every guard
// holds (e.g. "I am still the coordinator"). It reports whether it did.
func (s *Store) UpdatePrimary(ctx context.Context, rev int64, p Primary, guards ...Guard) (bool, error) {
	return s.UpdatePrimaryAndSync(ctx, rev, p, nil, guards...)
}

// UpdatePrimaryAndSync is UpdatePrimary that also writes the synchronous
// set sync (when not nil) in the same transaction: a failover in
// synchronous mode records the new primary's empty set as it names it.
func (s *Store) UpdatePrimaryAndSync(ctx context.Context, rev int64, p Primary, sync *Sync, guards ...Guard) (bool, error) {
	b, _ := json.Marshal(p)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.keyPrimary()), "=", rev)}
	for _, g := range guards {
		cmps = append(cmps, g.cmp())
	}
	ops := []clientv3.Op{clientv3.OpPut(s.keyPrimary(), string(b))}
	if sync != nil {
		sb, _ := json.Marshal(sync)
		ops = append(ops, clientv3.OpPut(s.keySync(), string(sb)))
	}
	r, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("dcs: update primary record: %w", err)
	}
	return r.Succeeded, nil
}

func (s *Store) keyClean(addr string) string { return s.prefix + "clean-stop/" + addr }

// MarkCleanStop records that addr's agent stopped on purpose (a clean stop
// is no failure unless primary.shutdown.as.failure).
func (s *Store) MarkCleanStop(ctx context.Context, addr string) error {
	_, err := s.cli.Put(ctx, s.keyClean(addr), time.Now().UTC().Format(time.RFC3339Nano))
	return err
}

// ClearCleanStop removes the marker when the agent starts.
func (s *Store) ClearCleanStop(ctx context.Context, addr string) error {
	_, err := s.cli.Delete(ctx, s.keyClean(addr))
	return err
}

// WatchPrimary calls fn with the primary record as it is now, then with
// every later version, in order, until ctx ends or the watch breaks (etcd
// lost its leader, or compaction): it returns then and the caller calls it
// again. It reads once and watches from that read's revision, so a version
// committed between the read and the start of the watch (while fn runs,
// say) is delivered too. Versions that cannot be decoded are skipped.
func (s *Store) WatchPrimary(ctx context.Context, fn func(p Primary, rev int64)) error {
	r, err := s.cli.Get(ctx, s.keyPrimary())
	if err != nil {
		return fmt.Errorf("dcs: read primary record: %w", err)
	}
	if len(r.Kvs) > 0 {
		var p Primary
		if json.Unmarshal(r.Kvs[0].Value, &p) == nil {
			fn(p, r.Kvs[0].ModRevision)
		}
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for w := range s.cli.Watch(wctx, s.keyPrimary(), clientv3.WithRev(r.Header.Revision+1)) {
		if err := w.Err(); err != nil {
			return fmt.Errorf("dcs: watch primary record: %w", err)
		}
		for _, ev := range w.Events {
			var p Primary
			if ev.Type != clientv3.EventTypePut || json.Unmarshal(ev.Kv.Value, &p) != nil {
				continue
			}
			fn(p, ev.Kv.ModRevision)
		}
	}
	return ctx.Err()
}
