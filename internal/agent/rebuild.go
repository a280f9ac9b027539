package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/node"
	"github.com/pgfm/pgfm/internal/postgres"
)

// Rebuilding a replaced primary as a standby (auto.rewind,
// auto.basebackup; EFM 5's three situations all come here: after a
// failover, an isolated primary reconnecting, and agent start-up with
// another primary in the cluster). node.Step decides when; this file does
// it: CHECKPOINT on the primary, pg_rewind --dry-run, a record of the WAL
// the rewind throws away, pg_rewind, or pg_basebackup when that cannot;
// then the standby settings, a start, and monitoring again.

// rebuildTimeout bounds each program of a rebuild: a base backup of a large
// database takes long, and nothing else waits for it.
const rebuildTimeout = 6 * time.Hour

// oldPrimaryData says whether the stopped local data directory was last a
// primary's, asked only when a rebuild could follow (pg_controldata runs).
func (a *Agent) oldPrimaryData(ctx context.Context, in node.Input) bool {
	rec := in.Record
	if !in.Settings.Rebuild || in.Local.DB.Up || in.Local.PostmasterRunning || rec.Node == a.self ||
		rec.Phase != dcs.PhasePromoted || in.Local.RebuiltEpoch >= rec.Epoch {
		return false
	}
	cd, err := a.exec.controlData(ctx)
	if err != nil {
		a.log.Warn("cannot read the data directory's control file", "err", err)
		return false
	}
	return cd.WasPrimary()
}

// rebuild carries out node.Rebuild.
func (a *Agent) rebuild(ctx context.Context, r node.Rebuild) {
	// The primary must answer first: a rebuild against a primary that is
	// down (failing over again, say) would fail and use up the attempt.
	port := a.primaryPort(ctx, r.Primary)
	source := a.connString(ctx, r.Primary, port, a.cfg.RemoteTimeout) // holds the password: never logged
	// A promoted primary's control file names its new timeline only after
	// its first checkpoint; pg_rewind reads it there (EFM 5.3 does this too).
	if err := a.connFailed(postgres.Checkpoint(ctx, source)); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			a.log.Warn("not rebuilding yet: the primary's database does not answer", "primary", r.Primary, "err", err)
			return
		}
		// It answered (db.user may lack the right to CHECKPOINT): go on.
		a.log.Warn("CHECKPOINT on the primary refused; rebuilding all the same", "primary", r.Primary, "err", err)
	}
	a.mu.Lock()
	a.rebuiltEpoch = r.Epoch // once per epoch from here, whatever happens
	a.rebuilding = fmt.Sprintf("rebuilding as a standby of %s (epoch %d)", r.Primary, r.Epoch)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.rebuilding = ""
		a.mu.Unlock()
		a.wake(a.publishKick)
	}()
	a.wake(a.publishKick)
	a.log.Warn("rebuilding this old primary as a standby", "primary", r.Primary, "epoch", r.Epoch)
	how, err := a.rebuildData(ctx, r, source, port)
	if err == nil {
		err = a.exec.follow(ctx, a.localConnString(), r.Primary, port, a.cfg.DB.User, a.applicationName(), a.cfg.LocalTimeout+60*time.Second)
	}
	if err == nil {
		err = a.exec.startStandby(ctx, a.cfg.LocalTimeout+60*time.Second)
	}
	if err != nil {
		a.log.Error("cannot rebuild this old primary as a standby; it stays stopped", "err", err)
		a.notify(ctx, hook.Severe, "Failed primary could not be rebuilt", fmt.Sprintf(
			"%s could not be rebuilt as a standby of %s (epoch %d): %v. Its database stays stopped; rebuild it by hand (pg_rewind or pg_basebackup), start it, and run `pgfm resume %s`.",
			a.self, r.Primary, r.Epoch, err, a.cfg.Cluster))
		return
	}
	a.setRejoin("")
	a.mu.Lock()
	a.idle = nil // monitoring again: the database is a standby now
	a.mu.Unlock()
	a.setFollowedEpoch(r.Epoch)
	a.log.Info("rebuilt as a standby", "primary", r.Primary, "epoch", r.Epoch, "with", how)
	a.notify(ctx, hook.Info, "Failed primary rebuilt as a standby", fmt.Sprintf("%s was rebuilt with %s and runs as a standby of %s (epoch %d).", a.self, how, r.Primary, r.Epoch))
}

// rebuildData makes the data directory a copy of the primary's history:
// pg_rewind (auto.rewind), else or when it fails pg_basebackup
// (auto.basebackup). It says which did it.
func (a *Agent) rebuildData(ctx context.Context, r node.Rebuild, source string, port int) (string, error) {
	var rewindErr error
	if a.cfg.AutoRewind || a.cfg.AutoBasebackup {
		rewindErr = a.rewindData(ctx, r, source, !a.cfg.AutoRewind)
		if rewindErr == nil && a.cfg.AutoRewind {
			return "pg_rewind", nil
		}
	}
	if !a.cfg.AutoBasebackup {
		return "", rewindErr
	}
	if rewindErr != nil && a.cfg.AutoRewind {
		a.log.Warn("pg_rewind cannot rebuild this node; copying the primary with pg_basebackup", "err", rewindErr)
	}
	a.notify(ctx, hook.Warning, "Failed primary is being rebuilt with pg_basebackup", fmt.Sprintf("%s is being rebuilt to follow the primary at %s.", a.self, r.Primary))
	kept, err := a.exec.basebackup(ctx, r.Primary, port, a.cfg.DB.User, postgres.BackupOptions{}, rebuildTimeout)
	if err != nil {
		a.notify(ctx, hook.Severe, "pg_basebackup call failed", fmt.Sprintf("%s: %v", a.self, err))
		return "", err
	}
	a.log.Warn("copied the primary with pg_basebackup; the old data directory is kept, remove it when it is no longer needed", "kept", kept)
	return "pg_basebackup", nil
}

// rewindData runs pg_rewind --dry-run, records the WAL the rewind throws
// away, and rewinds when needed; reportOnly stops after the record (a
// base backup follows).
func (a *Agent) rewindData(ctx context.Context, r node.Rebuild, source string, reportOnly bool) error {
	cd, err := a.exec.controlData(ctx)
	if err != nil {
		return err
	}
	if err := cd.CanRewind(); err != nil {
		if reportOnly {
			a.log.Warn("the WAL a base backup throws away cannot be measured", "why", err)
		}
		return err
	}
	dry, err := a.exec.rewind(ctx, source, true, rebuildTimeout)
	if err != nil {
		return err
	}
	if dry.Needed {
		a.reportDiscarded(ctx, r, dry)
	}
	if reportOnly || !dry.Needed {
		return nil
	}
	_, err = a.exec.rewind(ctx, source, false, rebuildTimeout)
	return err
}

// reportDiscarded logs and notifies what a rebuild throws away: the old
// timeline's WAL after the fork point and how many commits it held, so an
// operator knows whether acknowledged writes were lost.
func (a *Agent) reportDiscarded(ctx context.Context, r node.Rebuild, dry postgres.Rewind) {
	d, err := a.exec.discardedWAL(ctx, dry.ForkLSN, dry.ForkTimeline, 5*time.Minute)
	if err != nil {
		a.log.Warn("cannot read the WAL after the fork point", "fork", dry.ForkLSN, "err", err)
		a.notify(ctx, hook.Warning, "Rebuild discards unread WAL", fmt.Sprintf("%s diverged from %s at %s on timeline %d; the WAL after it could not be read (%v), so how many commits it held is unknown.",
			a.self, r.Primary, dry.ForkLSN, dry.ForkTimeline, err))
		return
	}
	sev := hook.Info
	if d.Commits > 0 {
		sev = hook.Severe
	}
	a.log.Warn("the rebuild throws away this node's WAL after the fork point", "fork", d.From, "last_record", d.To, "timeline", dry.ForkTimeline, "records", d.Records, "commits", d.Commits)
	a.notify(ctx, sev, "Rebuild discards WAL", fmt.Sprintf("%s diverged from %s at %s on timeline %d. Its WAL from there to %s holds %d records, %d of them commits, that the new primary never received; the rebuild throws them away. Commits there were acknowledged to clients only if they committed before the failover.",
		a.self, r.Primary, d.From, dry.ForkTimeline, d.To, d.Records, d.Commits))
}

// primaryPort is the primary's database port: its registration's, else ours.
func (a *Agent) primaryPort(ctx context.Context, addr string) int {
	reg, ok, err := a.store.Registration(ctx, addr)
	if err != nil || !ok {
		return a.cfg.DB.Port
	}
	return cmp.Or(reg.DBPort, a.cfg.DB.Port)
}

// busyRebuilding: a rebuild or create-standby is working on the data
// directory.
func (a *Agent) busyRebuilding() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rebuilding != ""
}
