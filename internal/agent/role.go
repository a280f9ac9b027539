package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/node"
	"github.com/pgfm/pgfm/internal/postgres"
)

// roleLoop makes the local database agree with the primary record: the
// named node promotes itself (after fencing), the others follow it, and a
// database that is writable without being named is stopped. Every step is
// idempotent, so a restarted agent simply resumes (DESIGN.md §3).
func (a *Agent) roleLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.LocalPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.roleKick:
		}
		if !a.cfg.IsWitness {
			a.reconcile(ctx)
		}
	}
}

// reconcile does what node.Step asks of this node now, except a local
// restart, which publish decides before it reports the crash.
func (a *Agent) reconcile(ctx context.Context) {
	if a.busyRebuilding() {
		return // create-standby owns the data directory until it is done
	}
	a.mu.Lock()
	st := a.status
	a.mu.Unlock()
	in := a.nodeInput(st.DB, false)
	in.Local.OldPrimaryData = a.oldPrimaryData(ctx, in)
	a.act(ctx, node.Step(in, time.Now()), func(act node.Action) bool {
		_, restart := act.(node.RestartLocally)
		return !restart
	})
}

// nodeInput gathers what node.Step decides from: db is the local
// database's last observation, gone whether its postmaster is known gone.
func (a *Agent) nodeInput(db cluster.DBObservation, gone bool) node.Input {
	rec, _ := a.currentPrimary()
	followed := a.followedEpoch()
	started, running := a.exec.postmasterStarted()
	vipHeld := a.exec.vipHeld()
	demoted := a.demotedEpoch()
	a.mu.Lock()
	defer a.mu.Unlock()
	in := node.Input{
		Self: a.self,
		Settings: node.Settings{
			Witness: a.cfg.IsWitness, AutoReconfigure: a.cfg.AutoReconfigure, StopFailedPrimary: a.cfg.StopFailedPrimary,
			LocalRestart: a.cfg.PrimaryRestartTimeout > 0, FenceMargin: a.fenceMargin(), VIP: a.exec.vip != nil,
			Rebuild: a.cfg.AutoRewind || a.cfg.AutoBasebackup,
		},
		Record: node.Record{Node: rec.Node, Previous: rec.Previous, Epoch: rec.Epoch, Phase: rec.Phase, Switchover: rec.Switchover},
		Local: node.Local{
			DB: db, PostmasterGone: gone, PostmasterRunning: running, PostmasterStarted: started,
			Fenced: a.rejoinReason != "", FollowedEpoch: followed, FailedStopEpoch: a.failedStopEpoch,
			RestartTried: a.restartTried, VIPHeld: vipHeld, DemotedEpoch: demoted, RebuiltEpoch: a.rebuiltEpoch,
			IsolatedEpoch: a.isolatedEpoch,
		},
		Lease: node.Lease{Live: a.live != nil},
	}
	if a.idle != nil {
		in.Local.FailedAt = a.idle.Since
	}
	if a.lease != nil {
		in.Lease.ValidUntil = a.lease.Until()
		in.Lease.Fenced = a.lease == a.fencedLease
	}
	return in
}

// act carries out the actions that want accepts, in order.
func (a *Agent) act(ctx context.Context, acts []node.Action, want func(node.Action) bool) {
	for _, act := range acts {
		if !want(act) {
			continue
		}
		rec, rev := a.currentPrimary()
		switch act := act.(type) {
		case node.FenceIsolated:
			a.mu.Lock()
			again := a.lease == a.fencedLease
			a.fencedLease = a.lease // once per lost lease, whichever loop sees it first
			a.mu.Unlock()
			if !again {
				a.fenceIsolated(ctx, act.Until)
			}
		case node.FenceStale:
			a.fenceStale(ctx, act)
		case node.Promote, node.RecordPromotion:
			if rec.Node == a.self && rec.Phase == dcs.PhasePromoting {
				a.promoteSelf(ctx, rec, rev)
			}
		case node.Follow:
			a.follow(ctx, act)
		case node.Followed:
			a.setFollowedEpoch(act.Epoch)
		case node.TakeVIP:
			a.ensureVIP(ctx)
		case node.ReleaseVIP:
			a.releaseVIP(ctx, act.Why)
		case node.StopFailedPrimary:
			a.stopFailedPrimary(ctx, act)
		case node.KeepDown:
			if err := a.exec.keepDown(); err != nil {
				a.log.Warn("cannot write standby.signal", "err", err)
			}
		case node.RestartLocally:
			a.restartLocally(ctx)
		case node.ResumeAsPrimary:
			a.resumeAsPrimary(ctx, act)
		case node.Demote:
			a.demote(ctx, act)
		case node.StartAsStandby:
			a.startAsStandby(ctx, act)
		case node.Rebuild:
			a.rebuild(ctx, act)
		}
	}
}

// stopFailedPrimary (stop.failed.primary, EFM's meaning): once a failover
// replaced this node, the postmaster that was running when its database
// was seen to fail is stopped for good, once per epoch, so a hung server
// cannot wake up writable and take writes before it is seen. A postmaster
// started since (an operator's) is left alone (node.StopFailed), and a
// stale primary that answers is always stopped (fenceStale).
func (a *Agent) stopFailedPrimary(ctx context.Context, act node.StopFailedPrimary) {
	epoch := act.Epoch
	a.mu.Lock()
	done := a.failedStopEpoch >= epoch
	a.failedStopEpoch = max(a.failedStopEpoch, epoch)
	a.mu.Unlock()
	if done {
		return
	}
	a.log.Warn("stopping the failed primary's database (stop.failed.primary)", "epoch", epoch)
	stopped, err := a.exec.stopStartedAt(ctx, act.Started, "immediate", a.cfg.LocalTimeout+5*time.Second)
	switch {
	case err != nil:
		a.log.Error("cannot stop the failed primary's database", "err", err)
	case !stopped:
		a.log.Info("the failed primary's postmaster is gone already; a postmaster started since is left alone", "failed_started", act.Started)
	}
}

// server is the local PostgreSQL server's control handle.
func (a *Agent) server() postgres.Server {
	db := a.cfg.DB
	return postgres.Server{BinDir: a.binDir, Owner: db.ServiceOwner, DataDir: db.DataDir, ConfigDir: db.ConfigDir,
		SSLMode: db.SSLMode, Password: a.newPassword()}
}

// localConnString reaches the local database; it holds the password (see
// connString). It waits at most local.timeout for a first run of
// script.db.password.
func (a *Agent) localConnString() string {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.LocalTimeout)
	defer cancel()
	return a.connString(ctx, a.self, a.cfg.DB.Port, a.cfg.LocalTimeout)
}

func (a *Agent) rejoinNeeded() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rejoinReason
}

func (a *Agent) setRejoin(reason string) {
	a.mu.Lock()
	a.rejoinReason = reason
	a.mu.Unlock()
}

// fenceStale stops a database that must not accept writes: an old primary
// after a failover. It also leaves standby.signal so that nothing restarts
// it as a primary; bringing it back is a rejoin.
func (a *Agent) fenceStale(ctx context.Context, f node.FenceStale) {
	why := f.Why
	reason := fmt.Sprintf("database stopped: epoch %d named %s primary; this node needs a rejoin", f.Epoch, f.Primary)
	a.setRejoin(reason)
	a.log.Error("fencing the local database: it "+why, "epoch", f.Epoch)
	a.releaseVIP(ctx, "fenced: "+why)
	// Decided on the last observation: what runs now may be another
	// postmaster (an operator's, starting as a standby).
	obs := a.observeLocal(ctx)
	signalErr, stopErr := a.exec.fenceStale(ctx, f.Started, obs.Up && !obs.InRecovery, a.cfg.LocalTimeout+5*time.Second)
	if signalErr != nil {
		a.log.Error("cannot write standby.signal", "err", signalErr)
	}
	if stopErr != nil {
		a.log.Error("cannot stop the stale primary's database", "err", stopErr)
	}
	a.notify(ctx, hook.Severe, "Primary database being fenced off", fmt.Sprintf("The database on %s %s; it was stopped. %s.", a.self, why, reason))
	a.wake(a.publishKick)
}

// promoteSelf carries out a failover that named this node: wait until the
// old primary is out of the way, run script.fence, promote, record it,
// run script.post.promotion.
func (a *Agent) promoteSelf(ctx context.Context, rec dcs.Primary, rev int64) {
	a.setRejoin("")
	obs := a.observeLocal(ctx)
	if obs.Up && !obs.InRecovery {
		a.finishPromotion(ctx, rec, rev, obs) // done before a crash or restart
		return
	}
	if !a.oldPrimaryOut(ctx, rec) {
		return
	}
	if !obs.Up && a.switchoverAborted(rec) && !a.startAborted(ctx) {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout+a.cfg.LocalTimeout)
	err := a.prepareSyncForPromotion(sctx, rec)
	cancel()
	if err != nil {
		// No write may be taken before the synchronous set of the new
		// epoch is recorded: retried on the next pass.
		a.log.Warn("not promoting yet: synchronous mode", "err", err)
		return
	}
	a.notify(ctx, hook.Warning, "Promotion has started", fmt.Sprintf("Promoting %s to replace %s (epoch %d): %s", a.self, rec.Previous, rec.Epoch, rec.Reason))
	vars := hook.Placeholders{NewPrimary: a.self, FailedPrimary: rec.Previous, Node: a.self, Owner: a.cfg.DB.ServiceOwner}
	if a.cfg.ScriptFence != "" && !rec.NoScripts {
		res := a.runScript(ctx, "script.fence", a.cfg.ScriptFence, vars)
		if res.Outcome != hook.OK {
			a.failPromotion(ctx, rec, rev, dcs.PhaseFenceFailed, "Fencing script error",
				fmt.Sprintf("script.fence %s (exit %d%s); the failover was not done. Output: %s", res.Outcome, res.ExitCode, errSuffix(res.Err), res.Output))
			return
		}
	}
	if err := a.waitVIPGone(ctx); err != nil {
		a.failPromotion(ctx, rec, rev, dcs.PhasePromoteFailed, "Standby agent tried to promote, but VIP appears to still be assigned", err.Error())
		return
	}
	a.log.Info("promoting the local database", "epoch", rec.Epoch, "replacing", rec.Previous)
	pctx, cancel := context.WithTimeout(ctx, a.cfg.LocalTimeout+30*time.Second)
	err = a.exec.promote(pctx, a.localConnString(), 30*time.Second)
	cancel()
	if errors.Is(err, errLease) {
		// Cut off from the majority: not promoting now. The record stays
		// as it is; the coordinator may name another node meanwhile.
		a.log.Warn("not promoting yet", "err", err)
		return
	}
	if err != nil {
		a.failPromotion(ctx, rec, rev, dcs.PhasePromoteFailed, "Could not promote standby", err.Error())
		return
	}
	if obs = a.waitOutOfRecovery(ctx); !obs.Up || obs.InRecovery {
		a.failPromotion(ctx, rec, rev, dcs.PhasePromoteFailed, "Could not promote standby",
			fmt.Sprintf("the database is still in recovery %s after the promotion (local.timeout)", a.cfg.LocalTimeout))
		return
	}
	a.ensureVIP(ctx) // before the failover is reported complete
	a.finishPromotion(ctx, rec, rev, obs)
	if a.cfg.ScriptPostPromotion != "" && !rec.NoScripts {
		a.runScript(ctx, "script.post.promotion", a.cfg.ScriptPostPromotion, vars)
	}
}

// waitOutOfRecovery checks every recovery.check.period, for up to
// local.timeout, that the promoted database has left recovery (EFM's
// meaning of the property); pg_promote normally returns once it has, so
// the first check answers.
func (a *Agent) waitOutOfRecovery(ctx context.Context) cluster.DBObservation {
	deadline := time.Now().Add(a.cfg.LocalTimeout)
	for {
		obs := a.observeLocal(ctx)
		if (obs.Up && !obs.InRecovery) || time.Now().After(deadline) || ctx.Err() != nil {
			return obs
		}
		sleep(ctx, max(a.cfg.RecoveryCheckPeriod, 50*time.Millisecond))
	}
}

func (a *Agent) finishPromotion(ctx context.Context, rec dcs.Primary, rev int64, obs cluster.DBObservation) {
	next := rec
	next.Phase, next.Timeline, next.LastLSN, next.Since = dcs.PhasePromoted, obs.Timeline, obs.CurrentLSN, time.Now().UTC()
	ok, err := a.store.UpdatePrimary(ctx, rev, next)
	if err != nil || !ok {
		a.log.Warn("cannot record the promotion yet; retrying", "err", err)
		return
	}
	a.log.Info("promoted: this node is the primary", "epoch", rec.Epoch, "timeline", obs.Timeline, "lsn", obs.CurrentLSN)
	a.notify(ctx, hook.Warning, "Failover has completed", fmt.Sprintf("%s is the new primary of cluster %s (epoch %d, timeline %d), replacing %s.", a.self, a.cfg.Cluster, rec.Epoch, obs.Timeline, rec.Previous))
	a.wake(a.publishKick)
}

// errSuffix is ": err" for a script's reason, when it has one.
func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func (a *Agent) failPromotion(ctx context.Context, rec dcs.Primary, rev int64, phase dcs.Phase, subject, detail string) {
	next := rec
	next.Phase, next.Detail = phase, detail
	if _, err := a.store.UpdatePrimary(ctx, rev, next); err != nil {
		a.log.Error("cannot record the failed promotion", "err", err)
	}
	a.log.Error(subject, "detail", detail)
	a.notify(ctx, hook.Severe, subject, fmt.Sprintf("%s The cluster waits for an operator: `pgfm promote %s` retries (see cluster-status).", detail, a.cfg.Cluster))
}

// follow re-points a standby at the new primary once per epoch
// (auto.reconfigure, node.Step), so the standby streams on the new timeline.
func (a *Agent) follow(ctx context.Context, f node.Follow) {
	rec := dcs.Primary{Node: f.Primary, Epoch: f.Epoch}
	err := a.exec.follow(ctx, a.localConnString(), rec.Node, a.cfg.DB.Port, a.cfg.DB.User, a.applicationName(), a.cfg.LocalTimeout+60*time.Second)
	if err != nil {
		a.log.Warn("cannot re-point this standby at the new primary; retrying", "primary", rec.Node, "err", err)
		return
	}
	a.setFollowedEpoch(rec.Epoch)
	a.log.Info("following the new primary", "primary", rec.Node, "epoch", rec.Epoch)
	a.notify(ctx, hook.Info, "Standby reconfigured", fmt.Sprintf("Standby %s now follows %s (epoch %d).", a.self, rec.Node, rec.Epoch))
}
