package agent

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/dcs"
)

// primaryLoop keeps a.primary current from etcd's primary record and
// wakes the role loop whenever it changes.
func (a *Agent) primaryLoop(ctx context.Context) {
	for ctx.Err() == nil {
		p, rev, ok, err := a.store.ReadPrimary(ctx)
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		if ok {
			a.setPrimary(p, rev)
		}
		r, err := a.cli.Get(ctx, a.store.PrimaryKey())
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for w := range a.cli.Watch(wctx, a.store.PrimaryKey(), clientv3.WithRev(r.Header.Revision+1)) {
			if w.Err() != nil {
				break
			}
			for _, ev := range w.Events {
				var p dcs.Primary
				if ev.Type != clientv3.EventTypePut || json.Unmarshal(ev.Kv.Value, &p) != nil {
					continue
				}
				a.setPrimary(p, ev.Kv.ModRevision)
			}
		}
		cancel()
		sleep(ctx, 200*time.Millisecond)
	}
}

func (a *Agent) setPrimary(p dcs.Primary, rev int64) {
	a.mu.Lock()
	changed := rev > a.primaryRev
	moved := p.Epoch != a.primary.Epoch || p.Phase != a.primary.Phase
	if changed {
		a.primary, a.primaryRev = p, rev
	}
	a.mu.Unlock()
	if changed && moved { // not for the primary's LastLSN updates
		a.wake(a.roleKick)
		// Publish the new epoch at once: a new primary waits for the old
		// one's agent to confirm it has seen it.
		a.wake(a.publishKick)
	}
}

// currentPrimary is the last primary record seen and its revision.
func (a *Agent) currentPrimary() (dcs.Primary, int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.primary, a.primaryRev
}

// wake signals a loop without blocking; signals coalesce.
func (a *Agent) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
