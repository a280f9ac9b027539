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
// campaigning with l (the agent's lease), or until ctx ends.
func (s *Store) Campaign(ctx context.Context, l *Lease, addr string) (*Election, error) {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(l.id), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("dcs: session: %w", err)
	}
	el := concurrency.NewElection(sess, s.ElectionPrefix())
	for {
		err := el.Campaign(ctx, addr)
		if err == nil {
			return &Election{key: el.Key(), rev: el.Rev()}, nil
		}
		// A campaign whose wait broke (etcd lost its leader, or an auth
		// token was refused by another member) leaves its key in place,
		// ahead of later candidates: giving up would block the election
		// for as long as this lease lives. Campaigning again on the same
		// lease finds the key and keeps its place.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dcs: campaign: %w", err)
		case <-time.After(campaignRetry):
		}
	}
}

// campaignRetry paces campaigns whose wait broke.
const campaignRetry = 500 * time.Millisecond
