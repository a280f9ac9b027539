package agent

import (
	"context"
	"time"

	"github.com/pgfm/pgfm/internal/dcs"
)

// primaryLoop keeps a.primary current from etcd's primary record and
// wakes the role loop whenever it changes. The watch starts at the
// revision of its own read, so no failover committed meanwhile is missed.
func (a *Agent) primaryLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if err := a.store.WatchPrimary(ctx, a.setPrimary); err != nil && ctx.Err() == nil {
			a.log.Debug("primary record watch ended; watching again", "err", err)
		}
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
