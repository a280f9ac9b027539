package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// lease is the agent's liveness in etcd. It tracks until when the lease is
// certainly still alive: the send time of the last successful renewal plus
// the TTL. etcd's leader expires a lease no earlier than its receipt of that
// renewal plus the TTL, so a primary that stops writing before validUntil
// has stopped before any other node can see its lease expire (DESIGN.md §4,
// invariant 1). A new etcd leader only extends leases, never shortens them.
type lease struct {
	cli *clientv3.Client
	id  clientv3.LeaseID
	ttl time.Duration

	mu         sync.Mutex
	validUntil time.Time
}

// grantLease asks for a lease of ttl; etcd may grant more (never less than
// 1.5 × its election timeout), which is used as granted.
func grantLease(ctx context.Context, cli *clientv3.Client, ttl time.Duration) (*lease, error) {
	sent := time.Now()
	r, err := cli.Grant(ctx, int64(ttl.Seconds()+0.999))
	if err != nil {
		return nil, err
	}
	granted := time.Duration(r.TTL) * time.Second
	return &lease{cli: cli, id: r.ID, ttl: granted, validUntil: sent.Add(granted)}, nil
}

// errLeaseLost: etcd no longer knows the lease (it expired).
var errLeaseLost = errors.New("the agent's lease expired")

// keepAlive renews the lease every ttl/5 until ctx ends or the lease is
// lost. Renewals are single requests so each has a known send time.
func (l *lease) keepAlive(ctx context.Context) error {
	period := max(l.ttl/5, 100*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, period*2)
		r, err := l.cli.KeepAliveOnce(rctx, l.id)
		cancel()
		switch {
		case err == nil && r.TTL > 0:
			l.mu.Lock()
			l.validUntil = sent.Add(time.Duration(r.TTL) * time.Second)
			l.mu.Unlock()
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && r.TTL <= 0):
			return errLeaseLost
		}
		if !l.valid(time.Now()) {
			return errLeaseLost
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// valid reports whether the lease is certainly alive at t.
func (l *lease) valid(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return t.Before(l.validUntil)
}

// until is the time up to which the lease is certainly alive.
func (l *lease) until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// leaseValidFor reports whether the agent holds a lease that is certainly
// alive for at least d more.
func (a *Agent) leaseValidFor(d time.Duration) bool {
	a.mu.Lock()
	l := a.lease
	a.mu.Unlock()
	return l != nil && l.valid(time.Now().Add(d))
}
