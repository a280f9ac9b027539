package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/vip"
)

// database is the control of the local PostgreSQL server
// (postgres.Server); an interface so the executor's rules are tested
// without a server.
type database interface {
	Start(ctx context.Context, timeout time.Duration) error
	Stop(ctx context.Context, mode string, timeout time.Duration) error
	Restart(ctx context.Context, timeout time.Duration) error
	Promote(ctx context.Context, connString string, wait time.Duration) error
	Follow(ctx context.Context, connString, primaryHost string, primaryPort int, user, appName string) (restart bool, err error)
	EnsureStandbySignal() error
	RemoveStandbySignal() error
	PostmasterStarted() (started time.Time, running bool)
	ControlData(ctx context.Context) (postgres.ControlData, error)
	Checkpoint(ctx context.Context, connString string) error
	Rewind(ctx context.Context, source string, dryRun bool, timeout time.Duration) (postgres.Rewind, error)
	DiscardedWAL(ctx context.Context, fork cluster.LSN, tl uint32, timeout time.Duration) (postgres.Discarded, error)
	Basebackup(ctx context.Context, host string, port int, user string, opts postgres.BackupOptions, timeout time.Duration) (string, error)
	SetStandbySetting(name, value string) error
	SetSyncStandbyNames(ctx context.Context, connString, value string) error
}

// address is the virtual IP's control (package vip).
type address interface {
	Acquire(ctx context.Context) error
	Release(ctx context.Context) error
	Held() bool
}

// errLease: an action that would let this node take writes was refused
// because the agent's lease may end within the fence margin: an isolated
// node must not start, promote or take the address.
var errLease = errors.New("the agent's lease is not certainly valid past the fence margin (this node may be cut off from the cluster's majority)")

// executor is the only code that starts, stops, promotes or reconfigures
// the local database and the only code that adds or removes the virtual
// IP, one operation at a time. Whatever decided an action, a start, a
// promotion or taking the address re-checks the lease at the moment it
// runs: decisions are made on observations that may be stale by then.
type executor struct {
	mu     sync.Mutex
	db     database
	vip    address // nil without virtual.ip
	margin time.Duration
	// leaseValidFor reports whether the agent's live lease is certainly
	// valid for d more.
	leaseValidFor func(d time.Duration) bool
}

func (e *executor) leaseCheck(d time.Duration) error {
	if !e.leaseValidFor(d) {
		return errLease
	}
	return nil
}

// start starts the local postmaster (a local restart of the primary).
func (e *executor) start(ctx context.Context, timeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.leaseCheck(e.margin); err != nil {
		return err
	}
	return e.db.Start(ctx, timeout)
}

// startPrimary starts the database out of recovery (standby.signal
// removed): an isolated primary that nobody replaced. A lease valid for
// twice the margin is required, as for the address: it must not fence
// itself again at once.
func (e *executor) startPrimary(ctx context.Context, timeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.leaseCheck(2 * e.margin); err != nil {
		return err
	}
	if err := e.db.RemoveStandbySignal(); err != nil {
		return err
	}
	return e.db.Start(ctx, timeout)
}

// stop stops the local postmaster; never refused.
func (e *executor) stop(ctx context.Context, mode string, timeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db.Stop(ctx, mode, timeout)
}

// fence leaves standby.signal and stops the database, so that nothing
// starts it writable again.
func (e *executor) fence(ctx context.Context, timeout time.Duration) (signalErr, stopErr error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	signalErr = e.db.EnsureStandbySignal()
	return signalErr, e.db.Stop(ctx, "immediate", timeout)
}

// fenceStale leaves standby.signal and stops the postmaster that started
// at started (the one seen writable), or whatever runs when writableNow;
// a postmaster started since that is not writable is left alone.
func (e *executor) fenceStale(ctx context.Context, started time.Time, writableNow bool, timeout time.Duration) (signalErr, stopErr error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	signalErr = e.db.EnsureStandbySignal()
	now, running := e.db.PostmasterStarted()
	if !running || (!writableNow && !now.Equal(started)) {
		return signalErr, nil
	}
	return signalErr, e.db.Stop(ctx, "immediate", timeout)
}

// keepDown leaves standby.signal in a stopped database's directory.
func (e *executor) keepDown() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db.EnsureStandbySignal()
}

// promote promotes the local standby.
func (e *executor) promote(ctx context.Context, connString string, wait time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.leaseCheck(e.margin); err != nil {
		return err
	}
	return e.db.Promote(ctx, connString, wait)
}

// follow re-points the local standby at host and restarts it when the
// setting needs a restart.
func (e *executor) follow(ctx context.Context, connString, host string, port int, user, app string, restartTimeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	restart, err := e.db.Follow(ctx, connString, host, port, user, app)
	if err == nil && restart {
		err = e.db.Restart(ctx, restartTimeout)
	}
	return err
}

// demote makes the running primary a standby-to-be of host (standby.signal
// and primary_conninfo) and stops it cleanly ("fast": its WAL senders
// pass on every record first), returning pg_controldata's view of the
// stopped server.
func (e *executor) demote(ctx context.Context, connString, host string, port int, user, app string, timeout time.Duration) (postgres.ControlData, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.db.Follow(ctx, connString, host, port, user, app); err != nil {
		return postgres.ControlData{}, err
	}
	if err := e.db.Stop(ctx, "fast", timeout); err != nil {
		return postgres.ControlData{}, err
	}
	return e.db.ControlData(ctx)
}

// checkpoint runs CHECKPOINT on the local database (no lock: it changes
// no role or state).
func (e *executor) checkpoint(ctx context.Context, connString string) error {
	return e.db.Checkpoint(ctx, connString)
}

// startStandby starts the database as a standby. It needs no lease: with
// standby.signal in place it cannot take writes.
func (e *executor) startStandby(ctx context.Context, timeout time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.db.EnsureStandbySignal(); err != nil {
		return err
	}
	return e.db.Start(ctx, timeout)
}

// controlData reads pg_control (no lock: it only reads).
func (e *executor) controlData(ctx context.Context) (postgres.ControlData, error) {
	return e.db.ControlData(ctx)
}

// rewind runs pg_rewind (see postgres.Server.Rewind).
func (e *executor) rewind(ctx context.Context, source string, dryRun bool, timeout time.Duration) (postgres.Rewind, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db.Rewind(ctx, source, dryRun, timeout)
}

// discardedWAL reads the local WAL after a fork point (no lock: it only reads).
func (e *executor) discardedWAL(ctx context.Context, fork cluster.LSN, tl uint32, timeout time.Duration) (postgres.Discarded, error) {
	return e.db.DiscardedWAL(ctx, fork, tl, timeout)
}

// basebackup replaces the data directory with a copy of the primary.
func (e *executor) basebackup(ctx context.Context, host string, port int, user string, opts postgres.BackupOptions, timeout time.Duration) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db.Basebackup(ctx, host, port, user, opts, timeout)
}

// setStandbySetting writes a setting of a stopped standby.
func (e *executor) setStandbySetting(name, value string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db.SetStandbySetting(name, value)
}

// setSyncStandbyNames sets synchronous_standby_names and returns once
// the server applies it. No lease check: waiting for more or fewer
// standbys never makes a node writable.
func (e *executor) setSyncStandbyNames(ctx context.Context, connString, value string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.db.SetSyncStandbyNames(ctx, connString, value)
}

// stopStartedAt stops the postmaster that started at started, and no
// other: a decision made on one observation must not stop a server
// started since (by an operator, say). It reports whether it stopped one.
func (e *executor) stopStartedAt(ctx context.Context, started time.Time, mode string, timeout time.Duration) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now, running := e.db.PostmasterStarted()
	if !running || !now.Equal(started) {
		return false, nil
	}
	return true, e.db.Stop(ctx, mode, timeout)
}

// postmasterStarted reads postmaster.pid (no lock: it only reads a file).
func (e *executor) postmasterStarted() (time.Time, bool) { return e.db.PostmasterStarted() }

// takeVIP adds the virtual IP unless held; a lease valid for twice the
// fence margin is required, so a primary about to fence itself does not
// take it. A half-done acquisition is undone.
func (e *executor) takeVIP(ctx context.Context) (taken bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.vip == nil || e.vip.Held() {
		return false, nil
	}
	if err := e.leaseCheck(2 * e.margin); err != nil {
		return false, err
	}
	if err := e.vip.Acquire(ctx); err != nil {
		if rerr := e.vip.Release(ctx); rerr != nil {
			err = fmt.Errorf("%w; removing the half-assigned address failed too: %v", err, rerr)
		}
		return false, err
	}
	return true, nil
}

// releaseVIP removes the virtual IP if held; never refused.
func (e *executor) releaseVIP(ctx context.Context) (released bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.vip == nil || !e.vip.Held() {
		return false, nil
	}
	if err := e.vip.Release(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// vipHeld reports whether this node holds the virtual IP now.
func (e *executor) vipHeld() bool { return e.vip != nil && e.vip.Held() }

// hostVIP is the virtual IP on this host's interfaces (package vip).
type hostVIP struct{ c vip.Config }

func (h hostVIP) Acquire(ctx context.Context) error { return vip.Acquire(ctx, h.c) }
func (h hostVIP) Release(ctx context.Context) error { return vip.Release(ctx, h.c) }
func (h hostVIP) Held() bool {
	held, err := vip.Held(h.c)
	return err == nil && held
}
