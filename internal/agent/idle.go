package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// idleState is why an agent does not monitor its database (EFM's IDLE):
// it reports Idle, is never a candidate, and stays so until `pgfm resume`
// or auto.resume.*.period finds the database right again.
type idleState struct {
	Reason  string
	Since   time.Time
	Startup bool // idle since the agent started (auto.resume.startup.period)
}

// nextIdle is the idle state after an observation. Idle is sticky: only a
// resume clears it. wantPrimary: the cluster names this node its promoted
// primary. Pure, for table tests.
func nextIdle(prev *idleState, first bool, obs cluster.DBObservation, wantPrimary bool, now time.Time) *idleState {
	switch {
	case prev != nil:
		return prev
	case first && !obs.Up:
		return &idleState{Reason: "the database was not running when the agent started: " + obs.Error, Since: now, Startup: true}
	case !obs.Up:
		return &idleState{Reason: "the local database failed: " + obs.Error, Since: now}
	case wantPrimary && obs.InRecovery:
		return &idleState{Reason: "database in wrong state: the cluster's primary is in recovery", Since: now}
	}
	return nil
}

// rightState says whether the database may be monitored again.
func rightState(obs cluster.DBObservation, wantPrimary bool) error {
	switch {
	case !obs.Up:
		return fmt.Errorf("the database does not answer (%s); start it first", obs.Error)
	case wantPrimary && obs.InRecovery:
		return fmt.Errorf("the cluster names this node its primary but the database is in recovery")
	case !wantPrimary && !obs.InRecovery:
		return fmt.Errorf("the database is not in recovery but the cluster's primary is another node; make it a standby of the primary first")
	}
	return nil
}

// primaryIfSelf is this node's address when the cluster names it primary.
func (a *Agent) primaryIfSelf() string {
	if rec, _ := a.currentPrimary(); rec.Node == a.self {
		return a.self
	}
	return ""
}

func (a *Agent) wantPrimary() bool {
	rec, _ := a.currentPrimary()
	return rec.Node == a.self && rec.Phase == dcs.PhasePromoted
}

// trackIdle updates the idle state with an observation and applies the
// auto-resume periods.
func (a *Agent) trackIdle(ctx context.Context, obs cluster.DBObservation) {
	if a.cfg.IsWitness {
		return
	}
	now := time.Now()
	want := a.wantPrimary() // takes a.mu itself
	a.mu.Lock()
	prev, first := a.idle, !a.observedOnce
	a.observedOnce = true
	a.idle = nextIdle(prev, first, obs, want, now)
	cur := a.idle
	a.mu.Unlock()
	if cur == nil {
		return
	}
	if prev == nil {
		a.log.Warn("agent idle: not monitoring its database", "reason", cur.Reason)
		a.notify(ctx, hook.Warning, "Idle agent", fmt.Sprintf("The agent on %s is idle: %s. Run `pgfm resume %s` once the database is right.", a.self, cur.Reason, a.cfg.Cluster))
		if !cur.Startup && !obs.Up && a.cfg.ScriptDBFailure != "" {
			// Off the publish path: the failure must reach the cluster
			// now, whatever the script does.
			vars := hook.Placeholders{FailedPrimary: a.primaryIfSelf(), Node: a.self, Type: "s", Owner: a.cfg.DB.ServiceOwner}
			if vars.FailedPrimary != "" {
				vars.Type = "p"
			}
			go a.runScript(ctx, "script.db.failure", a.cfg.ScriptDBFailure, vars)
		}
		return
	}
	period := a.cfg.AutoResumeFailurePeriod
	if cur.Startup {
		period = a.cfg.AutoResumeStartupPeriod
	}
	if period <= 0 || now.Sub(a.lastResumeTry) < period {
		return
	}
	a.lastResumeTry = now
	a.log.Info("starting auto resume check")
	if _, err := a.resume(ctx, obs); err != nil {
		a.log.Info("cannot resume yet", "err", err)
	}
}

// Resume returns an idle agent to monitoring (`pgfm resume`).
func (a *Agent) Resume(ctx context.Context) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	if a.cfg.IsWitness {
		return "", httpapi.Errorf(http.StatusBadRequest, "a witness has no database to resume")
	}
	return a.resume(ctx, a.observeLocal(ctx))
}

func (a *Agent) resume(ctx context.Context, obs cluster.DBObservation) (string, error) {
	a.mu.Lock()
	idle, stale := a.idle, a.rejoinReason
	a.mu.Unlock()
	if idle == nil && stale == "" {
		return fmt.Sprintf("The agent on %s is not idle.", a.self), nil
	}
	if err := rightState(obs, a.wantPrimary()); err != nil {
		return "", httpapi.Errorf(http.StatusConflict, "cannot resume: %v", err)
	}
	if a.cfg.ScriptResumed != "" {
		a.runScript(ctx, "script.resumed", a.cfg.ScriptResumed, hook.Placeholders{Node: a.self, Owner: a.cfg.DB.ServiceOwner})
	}
	a.mu.Lock()
	a.idle, a.rejoinReason = nil, ""
	a.mu.Unlock()
	a.log.Info("agent resumed monitoring its database")
	a.notify(ctx, hook.Info, "Agent resumed", fmt.Sprintf("The agent on %s monitors its database again.", a.self))
	a.wake(a.publishKick)
	return fmt.Sprintf("The agent on %s resumed monitoring its database.", a.self), nil
}

// restartLocally tries once per crash to start the primary's crashed
// postmaster again, for at most primary.restart.timeout, before the
// cluster fails over (Patroni's way). With 0, the default, the cluster
// fails over at once (EFM's way): a restart costs at least as long as a
// promotion and may fail the same way again.
func (a *Agent) restartLocally(ctx context.Context) {
	timeout := a.cfg.PrimaryRestartTimeout
	if timeout <= 0 {
		return
	}
	a.mu.Lock()
	if a.restartTried {
		a.mu.Unlock()
		return
	}
	a.restartTried = true
	a.restartingUntil = time.Now().Add(timeout)
	a.mu.Unlock()
	a.log.Warn("the primary's postmaster is gone; restarting it locally before any failover", "primary.restart.timeout", timeout)
	go func() {
		// Retry until the deadline: right after a crash, orphaned backends
		// may still hold the shared memory, or the dead postmaster not be
		// reaped yet, and pg_ctl start refuses.
		// pg_ctl also reports success for a dead postmaster whose pid file
		// remains: only a database that answers counts.
		deadline := time.Now().Add(timeout)
		var err error
		for {
			sctx, cancel := context.WithDeadline(ctx, deadline)
			err = a.exec.start(sctx, time.Until(deadline))
			if errors.Is(err, errLease) {
				cancel()
				break // an isolated primary must not come back writable
			}
			if err == nil {
				if obs := a.observe(sctx, a.self, a.cfg.DB.Port, a.cfg.LocalTimeout); !obs.Up {
					err = fmt.Errorf("the database does not answer after pg_ctl start: %s", obs.Error)
				}
			}
			cancel()
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleep(ctx, 300*time.Millisecond)
		}
		a.mu.Lock()
		a.restartingUntil = time.Time{}
		if err == nil {
			a.idle = nil
		}
		a.mu.Unlock()
		if err != nil {
			a.log.Error("local restart of the primary's database failed; the cluster fails over", "err", err)
		} else {
			a.log.Info("the primary's database was restarted locally")
			a.notify(ctx, hook.Warning, "Primary database restarted", fmt.Sprintf("The primary database on %s crashed and was restarted locally (primary.restart.timeout).", a.self))
		}
		a.wake(a.publishKick)
	}()
}
