package dcs

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Guard is a condition a transaction must hold to commit, such as "this
// agent is still the elected coordinator".
type Guard struct {
	key string
	rev int64
}

func (g Guard) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(g.key), "=", g.rev)
}

// Election is a won coordinator election; it lasts as long as the lease
// it was won with.
type Election struct {
	key string
	rev int64
}

// Guard holds while this election's win stands: a transaction guarded by
// it cannot commit once another agent has become the coordinator.
func (e *Election) Guard() Guard { return Guard{key: e.key, rev: e.rev} }

// Campaign waits until the agent at addr is the cluster's coordinator,
// campaigning with l (the agent's lease), until ctx ends, or until an
// error persists (the caller then reports it and campaigns again).
func (s *Store) Campaign(ctx context.Context, l *Lease, addr string) (*Election, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(l.id), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("dcs: session: %w", err)
	}
	el := concurrency.NewElection(sess, s.ElectionPrefix())
	for try := 0; try < campaignTries; try++ {
		if err = el.Campaign(ctx, addr); err == nil {
			return &Election{key: el.Key(), rev: el.Rev()}, nil
		}
		// A campaign whose wait broke (etcd lost its leader, or an auth
		// token was refused by another member) leaves its key in place,
		// ahead of later candidates: giving up would block the election
		// for as long as this lease lives. Campaigning again on the same
		// lease finds the key and keeps its place. An error that persists
		// is returned, for the caller to report and call again.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dcs: campaign: %w", err)
		case <-time.After(campaignRetry):
		}
	}
	return nil, fmt.Errorf("dcs: campaign: %w", err)
}

// A campaign whose wait broke is retried campaignTries times,
// campaignRetry apart, before its error is returned.
const (
	campaignTries = 10
	campaignRetry = 500 * time.Millisecond
)
