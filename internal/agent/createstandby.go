package agent

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/postgres"
)

// slotName is PostgreSQL's rule for replication slot names.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// CreateStandby makes this node's database a fresh standby of the
// cluster's primary (EFM 5's create-standby): stop it, drop and recreate
// the slot, copy the primary with pg_basebackup (the old data directory
// kept aside, a never-initialised one simply filled), configure, start and
// monitor. With DryRun it only says what it would do. The copy runs in the
// background: the answer says it started, and the node's status follows it.
func (a *Agent) CreateStandby(ctx context.Context, req httpapi.CreateStandbyRequest) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	if a.cfg.IsWitness {
		return "", httpapi.Errorf(http.StatusBadRequest, "this node is a witness: it has no database to make a standby")
	}
	if req.Slot != "" && !slotName.MatchString(req.Slot) {
		return "", httpapi.Errorf(http.StatusBadRequest, "slot name %q: use 1 to 63 lower-case letters, digits and underscores", req.Slot)
	}
	if req.WalDir != "" && !filepath.IsAbs(req.WalDir) {
		return "", httpapi.Errorf(http.StatusBadRequest, "-waldir %q: give an absolute path", req.WalDir)
	}
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "cannot read the cluster state: %v", err)
	}
	rec := snap.Primary
	switch {
	case snap.PrimaryRev == 0 || rec.Node == "":
		return "", httpapi.Errorf(http.StatusConflict, "the cluster has no primary yet")
	case rec.Node == a.self:
		return "", httpapi.Errorf(http.StatusConflict, "this node is the cluster's primary: run create-standby on the node that is to become a standby")
	case rec.Phase != dcs.PhasePromoted:
		return "", httpapi.Errorf(http.StatusConflict, "a failover to %s is %s: wait until it has a promoted primary", rec.Node, rec.Phase)
	}
	if st, ok := snap.Status[rec.Node]; !ok || st.Type != cluster.Primary {
		return "", httpapi.Errorf(http.StatusConflict, "the primary %s does not run as a primary now (its agent down or its database not writable): create-standby copies a running primary", rec.Node)
	}
	port := a.primaryPort(ctx, rec.Node)
	plan := fmt.Sprintf("Make %s a standby of %s: stop the local database; ", a.self, rec.Node)
	if req.Slot != "" {
		plan += fmt.Sprintf("drop replication slot %s on the primary if it exists; ", req.Slot)
	}
	plan += fmt.Sprintf("move %s aside to %s.pgfm-replaced-TIME if it holds anything; pg_basebackup --pgdata=%s --host=%s --port=%d --wal-method=stream --checkpoint=fast",
		a.cfg.DB.DataDir, a.cfg.DB.DataDir, a.cfg.DB.DataDir, rec.Node, port)
	if req.Slot != "" {
		plan += " --slot=" + req.Slot + " --create-slot"
	}
	if req.WalDir != "" {
		plan += " --waldir=" + req.WalDir
	}
	plan += "; configure it as a standby of " + rec.Node + "; start it; resume monitoring."
	if req.DryRun {
		return plan, nil
	}
	a.mu.Lock()
	if a.rebuilding != "" {
		busy := a.rebuilding
		a.mu.Unlock()
		return "", httpapi.Errorf(http.StatusConflict, "this node is busy: %s", busy)
	}
	a.rebuilding = fmt.Sprintf("create-standby: copying %s with pg_basebackup", rec.Node)
	a.mu.Unlock()
	a.wake(a.publishKick)
	go a.createStandby(context.WithoutCancel(ctx), rec, port, req)
	return "Started: " + plan, nil
}

// createStandby does the work of CreateStandby, in the background; its
// outcome is logged, notified and shown in the node's status.
func (a *Agent) createStandby(ctx context.Context, rec dcs.Primary, port int, req httpapi.CreateStandbyRequest) {
	err := a.createStandbySteps(ctx, rec, port, req)
	a.mu.Lock()
	a.rebuilding = ""
	if err != nil {
		a.createFailed = "create-standby failed: " + err.Error()
	} else {
		a.createFailed = ""
		a.idle, a.rejoinReason = nil, "" // monitoring again
	}
	a.mu.Unlock()
	a.wake(a.publishKick)
	if err != nil {
		a.log.Error("create-standby failed", "err", err)
		a.notify(ctx, hook.Severe, "Standby creation failed", fmt.Sprintf("create-standby on %s failed: %v", a.self, err))
		return
	}
	a.setFollowedEpoch(rec.Epoch)
	a.log.Info("create-standby: this node is a standby", "primary", rec.Node)
	a.notify(ctx, hook.Info, "Standby created", fmt.Sprintf("%s was copied from %s and runs as its standby.", a.self, rec.Node))
}

func (a *Agent) createStandbySteps(ctx context.Context, rec dcs.Primary, port int, req httpapi.CreateStandbyRequest) error {
	if _, running := a.exec.postmasterStarted(); running {
		a.log.Warn("create-standby: stopping the local database", "primary", rec.Node)
		if err := a.exec.stop(ctx, "fast", a.cfg.LocalTimeout+60*time.Second); err != nil {
			return err
		}
	}
	if req.Slot != "" {
		source := a.connString(ctx, rec.Node, port, a.cfg.RemoteTimeout)
		if err := a.connFailed(postgres.DropSlot(ctx, source, req.Slot)); err != nil {
			return err
		}
	}
	kept, err := a.exec.basebackup(ctx, rec.Node, port, a.cfg.DB.User, postgres.BackupOptions{Slot: req.Slot, WalDir: req.WalDir}, rebuildTimeout)
	if err != nil {
		return err
	}
	if kept != "" {
		a.log.Warn("create-standby: the old data directory is kept; remove it when it is no longer needed", "kept", kept)
	}
	if err := a.exec.follow(ctx, a.localConnString(), rec.Node, port, a.cfg.DB.User, a.applicationName(), a.cfg.LocalTimeout+60*time.Second); err != nil {
		return err
	}
	if req.Slot != "" {
		if err := a.exec.setStandbySetting("primary_slot_name", req.Slot); err != nil {
			return err
		}
	}
	return a.exec.startStandby(ctx, a.cfg.LocalTimeout+60*time.Second)
}
