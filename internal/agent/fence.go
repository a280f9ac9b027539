package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/node"
)

// fenceLoop guards invariant 1 on the primary: when the agent's lease may
// no longer be renewed in time (the node is cut off from the majority, or
// etcd cannot commit), the database stops accepting writes before the
// lease can have expired anywhere else (stop.isolated.primary).
// The decision is node.Step's; this loop only runs it often.
func (a *Agent) fenceLoop(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.cfg.IsWitness {
			continue
		}
		a.mu.Lock()
		st := a.status
		a.mu.Unlock()
		a.act(ctx, node.Step(a.nodeInput(st.DB, false), time.Now()), func(act node.Action) bool {
			_, fence := act.(node.FenceIsolated)
			return fence
		})
	}
}

// fenceMargin is how long before its lease's end a primary stops its
// database: room for pg_ctl to act.
func (a *Agent) fenceMargin() time.Duration { return config.FenceMargin(a.cfg.NodeTimeout) }

func (a *Agent) fenceIsolated(ctx context.Context, until time.Time) {
	why := fmt.Sprintf("the agent could not renew its lease (valid until %s): this node is cut off from the cluster's majority", until.Format(time.RFC3339Nano))
	if !a.cfg.StopIsolatedPrimary {
		a.releaseVIP(ctx, "isolated")
		a.log.Error("isolated primary; stop.isolated.primary=false leaves its database running", "why", why)
		a.notify(ctx, hook.Severe, "Primary isolated", why+"; stop.isolated.primary=false: the database keeps running.")
		return
	}
	a.setRejoin("database stopped: " + why)
	a.log.Error("fencing the isolated primary's database", "why", why)
	a.releaseVIP(ctx, "isolated")
	signalErr, stopErr := a.exec.fence(ctx, a.cfg.LocalTimeout+5*time.Second)
	if signalErr != nil {
		a.log.Error("cannot write standby.signal", "err", signalErr)
	}
	if stopErr != nil {
		a.log.Error("cannot stop the isolated primary's database", "err", stopErr)
	} else {
		a.log.Info("the isolated primary's database is stopped", "lease_valid_until", until.Format(time.RFC3339Nano))
	}
	a.notify(ctx, hook.Severe, "Isolated primary database shutdown", why+"; its database was stopped.")
	if a.cfg.ScriptPrimaryIsolated != "" {
		a.runScript(ctx, "script.primary.isolated", a.cfg.ScriptPrimaryIsolated, hook.Placeholders{FailedPrimary: a.self, Node: a.self, Owner: a.cfg.DB.ServiceOwner})
	}
	a.wake(a.publishKick)
}

// leaseValidFor reports whether the agent holds a lease that is certainly
// alive for at least d more.
func (a *Agent) leaseValidFor(d time.Duration) bool {
	a.mu.Lock()
	l := a.live
	a.mu.Unlock()
	return l != nil && l.Valid(time.Now().Add(d))
}
