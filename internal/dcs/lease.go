package dcs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/config"
)

// Lease is the agent's liveness in etcd. It tracks until when the lease is
// certainly still alive anywhere: the send time of the last confirmed
// renewal plus the TTL. A primary that stops writing before validUntil has
// stopped before any other node can see its lease expire (DESIGN.md §4,
// invariant 1).
//
// A renewal alone proves too little. etcd's leader renews a lease in its own
// lessor without asking its followers as long as its raft ticks are recent,
// so a leader cut off from the majority keeps renewing until CheckQuorum
// makes it step down: one to two election timeouts counted in ticks, which
// a loaded machine stretches without bound. Meanwhile the majority elects a
// new leader whose lessor expires the lease TTL plus one election timeout
// after that election. Renewals served by such a stale leader once kept an
// isolated primary writable 5 s after a cut on a busy machine. So a renewal
// counts only when a linearizable read sent after it succeeds in the same
// raft term as the read before it: the term did not change across the
// renewal, so the leader that renewed is the one whose quorum answered the
// read after the renewal was sent; any later leader is elected after that
// answer and expires the lease no earlier than the renewal's send time plus
// the TTL.
type Lease struct {
	cli *clientv3.Client
	id  clientv3.LeaseID
	// mem is set instead of cli for a lease of the in-memory store, whose
	// validity is kept on that store's clock (memory.go).
	mem *Memory
	ttl time.Duration
	// probeKey is read (count only) to confirm the leader's quorum.
	probeKey string

	mu         sync.Mutex
	validUntil time.Time
	term       uint64 // raft term of the last confirming read; 0: none yet
}

// GrantLease asks for a lease of ttl; etcd may grant more (never less than
// 1.5 × its election timeout), which is used as granted. A grant is a raft
// proposal, committed by a quorum after it was sent, so it needs no other
// confirmation.
// The lease is confirmed by reading the agent's own status key (addr).
func (s *Store) GrantLease(ctx context.Context, ttl time.Duration, addr string) (*Lease, error) {
	sent := time.Now()
	r, err := s.cli.Grant(ctx, int64(ttl.Seconds()+0.999))
	if err != nil {
		return nil, fmt.Errorf("dcs: grant lease: %w", err)
	}
	granted := time.Duration(r.TTL) * time.Second
	return &Lease{cli: s.cli, id: r.ID, ttl: granted, probeKey: s.keyStatus(addr), validUntil: sent.Add(granted)}, nil
}

// LeaseUntil returns a lease that is valid until t and cannot be renewed,
// for tests of code that only reads a lease's validity.
func LeaseUntil(t time.Time) *Lease { return &Lease{validUntil: t} }

// TTL is the lease's time to live as etcd granted it.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Revoke ends the lease now: everything written under it vanishes.
func (l *Lease) Revoke(ctx context.Context) error {
	if l.mem != nil {
		return l.mem.revoke(ctx, l.id)
	}
	_, err := l.cli.Revoke(ctx, l.id)
	return err
}

// ErrLeaseLost: etcd no longer knows the lease (it expired).
var ErrLeaseLost = errors.New("the agent's lease expired")

// KeepAlive renews the lease every ttl/5 until ctx ends or the lease is
// lost. Renewals are single requests so each has a known send time.
func (l *Lease) KeepAlive(ctx context.Context) error {
	period := config.RenewPeriod(l.ttl)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		changed, err := l.renew(ctx, 2*period)
		if err == nil && changed {
			// A new raft term (a new etcd leader): renew again at once in
			// it rather than a period later, which a lease close to its
			// fence margin may not have.
			_, err = l.renew(ctx, 2*period)
		}
		if err != nil {
			return err
		}
		if !l.Valid(time.Now()) {
			return ErrLeaseLost
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// renew sends one renewal and confirms it (see lease). It returns an error
// only when the lease is gone; a renewal that fails or cannot be confirmed
// just leaves validUntil where it was. termChanged: the confirming read
// was answered in another raft term than the read before, so this renewal
// did not count.
func (l *Lease) renew(ctx context.Context, timeout time.Duration) (termChanged bool, err error) {
	sent := l.now()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	ttl, err := l.keepAliveOnce(rctx)
	cancel()
	switch {
	case errors.Is(err, ErrLeaseLost):
		return false, ErrLeaseLost
	case err != nil:
		return false, nil
	}
	rctx, cancel = context.WithTimeout(ctx, timeout)
	term, err := l.confirm(rctx)
	cancel()
	if err != nil {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	accepted := acceptRenewal(l.term, term)
	if v := sent.Add(ttl); accepted && v.After(l.validUntil) {
		l.validUntil = v
	}
	l.term = term
	return !accepted, nil
}

// keepAliveOnce sends one renewal and returns the TTL it was renewed for;
// ErrLeaseLost when the lease is gone.
func (l *Lease) keepAliveOnce(ctx context.Context) (time.Duration, error) {
	if l.mem != nil {
		return l.mem.keepAliveOnce(ctx, l.id)
	}
	r, err := l.cli.KeepAliveOnce(ctx, l.id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && r.TTL <= 0):
		return 0, ErrLeaseLost
	case err != nil:
		return 0, err
	}
	return time.Duration(r.TTL) * time.Second, nil
}

// now is the time on the lease's clock: the in-memory store's, or the
// wall clock for etcd.
func (l *Lease) now() time.Time {
	if l.mem != nil {
		return l.mem.clock()
	}
	return time.Now()
}

// confirm makes a linearizable read, which etcd answers only after its
// leader heard from a quorum, and returns the raft term it was answered in.
func (l *Lease) confirm(ctx context.Context) (uint64, error) {
	if l.mem != nil {
		return l.mem.term(ctx)
	}
	r, err := l.cli.Get(ctx, l.probeKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return r.Header.RaftTerm, nil
}

// acceptRenewal: a renewal is proven when the reads before and after it
// were answered in one raft term (before is 0 until the first read).
func acceptRenewal(before, after uint64) bool { return before != 0 && before == after }

// Valid reports whether the lease is certainly alive at t.
func (l *Lease) Valid(t time.Time) bool { return t.Before(l.Until()) }

// Until is the time up to which the lease is certainly alive. A lease of
// the in-memory store is valid on that store's clock; Until maps it onto
// the wall clock by its distance from now, so moving the store's clock
// forward runs the lease out for callers that ask with time.Now().
func (l *Lease) Until() time.Time {
	l.mu.Lock()
	v := l.validUntil
	l.mu.Unlock()
	if l.mem != nil {
		return l.mem.onWallClock(v)
	}
	return v
}
