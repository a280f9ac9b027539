package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
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
	rec, _ := a.currentPrimary()
	a.mu.Lock()
	a.rejoinReason = "database stopped: " + why
	if rec.Node == a.self {
		a.isolatedEpoch = rec.Epoch // it may run again as this epoch's primary
	}
	a.mu.Unlock()
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

// resumeAsPrimary carries out node.ResumeAsPrimary: the isolated primary
// is back in the majority, still named in the same epoch, so nobody was
// promoted in its place: its database starts again as the primary (EFM
// 4.5). The executor checks the new lease when it starts it.
func (a *Agent) resumeAsPrimary(ctx context.Context, r node.ResumeAsPrimary) {
	// The record this agent holds may be stale (it was cut off): read it
	// again, and only once this agent's status is published under its new
	// lease, so that a failover committed from now on waits for this node
	// to confirm its database down (oldPrimaryOut) instead of taking it
	// for gone.
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return
	}
	if p := snap.Primary; p.Node != a.self || p.Epoch != r.Epoch || p.Phase != dcs.PhasePromoted {
		return // replaced meanwhile: the watch brings the new record
	}
	if _, published := snap.Status[a.self]; !published {
		return
	}
	if err := a.startOnPurpose(func() error { return a.exec.startPrimary(ctx, a.cfg.LocalTimeout+30*time.Second) }); err != nil {
		a.log.Warn("cannot start the database again as the primary yet; retrying", "err", err)
		return
	}
	a.mu.Lock()
	a.isolatedEpoch, a.rejoinReason, a.idle = 0, "", nil
	a.mu.Unlock()
	a.log.Warn("back in the cluster's majority with nobody promoted meanwhile: the database runs again as the primary", "epoch", r.Epoch)
	a.notify(ctx, hook.Warning, "Node no longer isolated from network", fmt.Sprintf("%s is back in the cluster's majority and still its primary (epoch %d): nobody was promoted meanwhile, so its database runs again as the primary.", a.self, r.Epoch))
	a.wake(a.publishKick)
}
