package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/node"
)

// The two halves of a switchover. The old primary stops cleanly, so that
// its WAL senders pass every record, the shutdown checkpoint last, to the
// standbys before they exit; it reports that checkpoint. The new primary
// promotes only once it has replayed past it: every write the old primary
// acknowledged is then on the new timeline, and the old primary's WAL ends
// exactly where the new timeline forks, so it starts as a standby of the
// new primary with no rewind.

// demote carries out node.Demote on the old primary.
func (a *Agent) demote(ctx context.Context, d node.Demote) {
	a.log.Warn("switchover: stopping the primary's database cleanly to become a standby", "new_primary", d.Primary, "epoch", d.Epoch)
	a.mu.Lock()
	a.demoting = d.Epoch // from now on its database going down is no failure
	a.mu.Unlock()
	a.releaseVIP(ctx, "switchover to "+d.Primary)
	timeout := a.cfg.LocalTimeout + 5*time.Second
	// While it still takes writes: the shutdown checkpoint, during which
	// nobody can write, then has little left to flush. A failure only
	// makes the stop slower.
	cctx, cancel := context.WithTimeout(ctx, timeout)
	if err := a.exec.checkpoint(cctx, a.localConnString()); err != nil {
		a.log.Warn("switchover: CHECKPOINT before the clean stop failed; the stop may take longer", "err", err)
	}
	cancel()
	cd, err := a.exec.demote(ctx, a.localConnString(), d.Primary, a.cfg.DB.Port, a.cfg.DB.User, a.applicationName(), timeout)
	dem := &cluster.Demotion{Epoch: d.Epoch}
	switch {
	case err != nil:
		// Never left writable: fence it, and let the new primary know the
		// stop was not clean (it then promotes as after a failover).
		a.log.Error("switchover: the clean stop failed; stopping the database immediately", "err", err)
		signalErr, stopErr := a.exec.fence(ctx, timeout)
		if signalErr != nil || stopErr != nil {
			a.log.Error("switchover: cannot stop the old primary's database", "signal_err", signalErr, "stop_err", stopErr)
			return // tried again at the next reconcile
		}
	case !cd.CleanlyStopped():
		a.log.Error("switchover: the database did not stop cleanly", "state", cd.State)
	default:
		dem.Checkpoint = cd.Checkpoint
		a.log.Info("switchover: the old primary's database stopped cleanly", "checkpoint", cd.Checkpoint)
	}
	a.mu.Lock()
	a.demoted = dem
	a.mu.Unlock()
	rec, _ := a.currentPrimary()
	if rec.Epoch == d.Epoch {
		a.publishDemotion(ctx, rec)
	}
	a.wake(a.publishKick)
}

// startAsStandby carries out node.StartAsStandby: demote left the data
// directory a standby of the new primary.
func (a *Agent) startAsStandby(ctx context.Context, s node.StartAsStandby) {
	if err := a.exec.startStandby(ctx, a.cfg.LocalTimeout+30*time.Second); err != nil {
		a.log.Warn("switchover: cannot start the old primary as a standby yet; retrying", "err", err)
		return
	}
	a.mu.Lock()
	a.demoted = nil // started: node.Step must not start it again
	a.mu.Unlock()
	a.log.Info("switchover: the old primary runs as a standby", "primary", s.Primary, "epoch", s.Epoch)
	a.notify(ctx, hook.Info, "Switchover has completed", fmt.Sprintf("%s runs as a standby of the new primary %s (epoch %d).", a.self, s.Primary, s.Epoch))
	a.wake(a.publishKick)
}

// demotedEpoch is the switchover epoch whose demotion this agent did.
func (a *Agent) demotedEpoch() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.demoted == nil {
		return 0
	}
	return a.demoted.Epoch
}

// stoppedForSwitchover: this node's database was stopped on purpose for
// the switchover of epoch.
func (a *Agent) stoppedForSwitchover(epoch uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.demoting == epoch && epoch != 0
}

// switchoverAborted: rec names this node again after it stopped its
// database for a switchover that was aborted (abortSwitchover); the
// database is down on purpose until promoteSelf starts it.
func (a *Agent) switchoverAborted(rec dcs.Primary) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.demoted != nil && rec.Node == a.self && rec.Phase == dcs.PhasePromoting && rec.Epoch > a.demoted.Epoch
}

// startAborted starts the database that demote stopped cleanly, as the
// standby it left it, so that promoteSelf can promote it back.
func (a *Agent) startAborted(ctx context.Context) bool {
	if err := a.startOnPurpose(func() error { return a.exec.startStandby(ctx, a.cfg.LocalTimeout+30*time.Second) }); err != nil {
		a.log.Warn("switchover aborted: cannot start the database to promote it back yet; retrying", "err", err)
		return false
	}
	a.mu.Lock()
	a.demoted = nil
	a.mu.Unlock()
	a.log.Info("switchover aborted: the database runs again, to be promoted back")
	return true
}

// startOnPurpose runs start, a start of the stopped local database. While
// it runs, and for an observation after it, a database that does not
// answer is no failure: the agent does not go idle on an observation made
// while the server was still starting up.
func (a *Agent) startOnPurpose(start func() error) error {
	a.mu.Lock()
	a.startingUntil = time.Now().Add(24 * time.Hour)
	a.mu.Unlock()
	err := start()
	a.mu.Lock()
	a.startingUntil = time.Now().Add(a.cfg.LocalPeriod + a.cfg.LocalTimeout)
	a.mu.Unlock()
	return err
}

func (a *Agent) startingOnPurpose() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return time.Now().Before(a.startingUntil)
}

// demotion is what this agent publishes of its demotion for epoch.
func (a *Agent) demotion(epoch uint64) *cluster.Demotion {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.demoted == nil || a.demoted.Epoch != epoch {
		return nil
	}
	d := *a.demoted
	return &d
}

func (a *Agent) applicationName() string {
	if a.cfg.ApplicationName != "" {
		return a.cfg.ApplicationName
	}
	return a.self
}

// oldPrimaryOut waits until the replaced primary can no longer take
// writes: its agent is gone (its lease expired, so it fenced itself) or
// it has seen the new epoch with its database down or in recovery. In a switchover the
// old primary's agent also reports its last checkpoint, and this standby
// replays up to it first. It wakes on every status change.
func (a *Agent) oldPrimaryOut(ctx context.Context, rec dcs.Primary) bool {
	if rec.Previous == "" {
		return true
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	go func() {
		for wctx.Err() == nil {
			_ = a.store.WatchStatuses(wctx, func() { a.wake(changed) })
			sleep(wctx, 200*time.Millisecond)
		}
	}()
	deadline := time.Now().Add(2 * a.cfg.NodeTimeout)
	var downSince time.Time // switchover: the old primary down, no demotion reported
	for {
		snap, err := a.store.Snapshot(ctx)
		if err == nil {
			if snap.PrimaryRev != 0 && snap.Primary.Epoch != rec.Epoch {
				return false // the record moved on
			}
			st, alive := snap.Status[rec.Previous]
			switch {
			case !alive:
				if rec.Switchover {
					a.switchoverBecameFailover(ctx, rec, "the old primary's agent is gone")
				}
				return true
			case st.Epoch < rec.Epoch:
			case !rec.Switchover && (!st.DB.Up || st.DB.InRecovery):
				return true // down, or a standby: it cannot take writes
			case st.DB.Up:
				downSince = time.Time{}
			case st.Demoted != nil && st.Demoted.Epoch == rec.Epoch:
				if st.Demoted.Checkpoint == 0 {
					a.switchoverBecameFailover(ctx, rec, "the old primary did not stop cleanly")
					return true
				}
				return a.replayedPast(ctx, rec, st.Demoted.Checkpoint)
			case downSince.IsZero():
				downSince = time.Now()
			case time.Since(downSince) > a.demoteGrace():
				// Down without a demotion for longer than a clean stop may
				// take: it crashed instead (it is down, so it takes no
				// writes), and no clean stop will be reported.
				a.switchoverBecameFailover(ctx, rec, "the old primary's database went down without a clean stop")
				return true
			}
		}
		if time.Now().After(deadline) {
			a.log.Warn("the old primary's agent still holds its lease without confirming its database is down; waiting", "old", rec.Previous)
			deadline = time.Now().Add(2 * a.cfg.NodeTimeout)
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// demoteGrace is how long an old primary's database may be seen down
// before its agent reports the clean stop of a switchover: the stop's own
// bound (demote) and a local check more.
func (a *Agent) demoteGrace() time.Duration { return 2*a.cfg.LocalTimeout + 5*time.Second }

// switchoverBecameFailover says that the switchover of rec promotes
// without the old primary's last position: as after a failover, within
// max.failover.lag.
func (a *Agent) switchoverBecameFailover(ctx context.Context, rec dcs.Primary, why string) {
	a.log.Warn("switchover: "+why+"; promoting as after a failover", "old", rec.Previous, "epoch", rec.Epoch)
	a.notify(ctx, hook.Severe, "Switchover became a failover", fmt.Sprintf("Switchover from %s to %s (epoch %d): %s, so %s is promoted as after a failover; writes the old primary acknowledged last may be missing (at most max.failover.lag).",
		rec.Previous, rec.Node, rec.Epoch, why, rec.Node))
}

// replayedPast waits until this standby has replayed the old primary's
// shutdown checkpoint at lsn. A standby that cannot get that WAL is never
// promoted with less: when its replay has not moved for demoteGrace, it
// gives the primary back to the old primary, which holds every write.
func (a *Agent) replayedPast(ctx context.Context, rec dcs.Primary, lsn cluster.LSN) bool {
	a.log.Info("switchover: the old primary stopped cleanly; replaying up to its last checkpoint", "checkpoint", lsn)
	var last cluster.LSN
	moved := time.Now()
	for {
		wctx, cancel := context.WithTimeout(ctx, a.cfg.LocalTimeout)
		got, err := a.waitReplayed(wctx, a.localConnString(), lsn, 5*time.Millisecond)
		cancel()
		if err == nil {
			a.log.Info("switchover: replayed the old primary's last checkpoint", "checkpoint", lsn, "replayed", got)
			return true
		}
		if cur, _ := a.currentPrimary(); cur.Epoch != rec.Epoch || ctx.Err() != nil {
			return false
		}
		if got > last {
			last, moved = got, time.Now()
		}
		if time.Since(moved) > a.demoteGrace() {
			if !a.alive(ctx, rec.Previous) {
				// Nobody to give the primary back to: its database is down
				// (stopped cleanly) and its agent gone.
				a.switchoverBecameFailover(ctx, rec, "this standby could not replay the old primary's last WAL and the old primary's agent is gone")
				return true
			}
			a.abortSwitchover(ctx, rec, lsn, last)
			return false
		}
		a.log.Warn("switchover: still waiting to replay the old primary's last checkpoint", "checkpoint", lsn, "replayed", got, "err", err)
		sleep(ctx, a.cfg.LocalPeriod)
	}
}

// alive: addr's agent holds its lease (its status is published); true
// when the store cannot say.
func (a *Agent) alive(ctx context.Context, addr string) bool {
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return true
	}
	_, ok := snap.Status[addr]
	return ok
}

// abortSwitchover names the old primary of the switchover rec again, in a
// new epoch, guarded by the record's revision: this standby never
// promoted, and the old primary stopped cleanly with every acknowledged
// write, so it is promoted back with nothing lost. No script runs: the
// fence and post-promotion scripts of rec never ran either.
func (a *Agent) abortSwitchover(ctx context.Context, rec dcs.Primary, checkpoint, replayed cluster.LSN) {
	snap, err := a.store.Snapshot(ctx)
	if err != nil || snap.Primary.Epoch != rec.Epoch || snap.Primary.Node != a.self || snap.Primary.Phase != dcs.PhasePromoting {
		return // the record moved on, or is read again at the next reconcile
	}
	why := fmt.Sprintf("switchover to %s aborted: it did not replay the old primary's WAL up to its last checkpoint %s (replayed up to %s, no progress for %s)",
		a.self, checkpoint, replayed, a.demoteGrace())
	next := dcs.Primary{
		Node: rec.Previous, Epoch: rec.Epoch + 1, Phase: dcs.PhasePromoting, Previous: a.self,
		Reason: why + "; " + rec.Previous + " is primary again", Since: time.Now().UTC(),
		LastLSN: snap.Primary.LastLSN, Timeline: snap.Primary.Timeline, NoScripts: true,
	}
	if ok, err := a.store.UpdatePrimary(ctx, snap.PrimaryRev, next); err != nil || !ok {
		a.log.Warn("switchover: cannot abort yet; retrying", "err", err)
		return
	}
	a.log.Error("switchover aborted; the old primary is promoted back", "old", rec.Previous, "epoch", next.Epoch, "checkpoint", checkpoint, "replayed", replayed)
	a.notify(ctx, hook.Severe, "Switchover aborted", fmt.Sprintf("%s; %s is promoted back (epoch %d), nothing is lost. Check %s's replication (pgfm replication-status %s) before trying again.",
		why, rec.Previous, next.Epoch, a.self, a.cfg.Cluster))
}

// publishDemotion tells the cluster at once that the old primary's
// database stopped cleanly and where its WAL ends: the new primary waits
// for it, so it does not wait for the next full observation.
func (a *Agent) publishDemotion(ctx context.Context, rec dcs.Primary) {
	a.mu.Lock()
	st, live, dem := a.status, a.live, a.demoted
	a.mu.Unlock()
	if live == nil || dem == nil || st.Address == "" {
		return
	}
	st.DB = cluster.DBObservation{Error: "stopped for the switchover", Timeline: st.DB.Timeline, CurrentLSN: st.DB.CurrentLSN}
	st.Type, st.Epoch, st.Demoted, st.ObservedAt = cluster.Idle, rec.Epoch, dem, time.Now().UTC()
	st.IdleReason = fmt.Sprintf("database stopped for the switchover to %s (epoch %d)", rec.Node, rec.Epoch)
	pctx, cancel := context.WithTimeout(ctx, max(a.cfg.LocalPeriod, time.Second))
	defer cancel()
	if err := a.store.PublishStatus(pctx, live, st); err != nil {
		a.log.Warn("switchover: cannot publish the demotion yet; the next publication carries it", "err", err)
	}
}
