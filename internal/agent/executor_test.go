package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/postgres"
)

// fakeDB records the operations that reach the database.
type fakeDB struct {
	calls   []string
	started time.Time // the running postmaster's start; zero: none runs
}

func (f *fakeDB) Start(context.Context, time.Duration) error {
	f.calls = append(f.calls, "start")
	return nil
}
func (f *fakeDB) Stop(_ context.Context, mode string, _ time.Duration) error {
	f.calls = append(f.calls, "stop "+mode)
	return nil
}
func (f *fakeDB) Restart(context.Context, time.Duration) error {
	f.calls = append(f.calls, "restart")
	return nil
}
func (f *fakeDB) Promote(context.Context, string, time.Duration) error {
	f.calls = append(f.calls, "promote")
	return nil
}
func (f *fakeDB) Follow(_ context.Context, _, host string, _ int, _, _ string) (bool, error) {
	f.calls = append(f.calls, "follow "+host)
	return true, nil
}
func (f *fakeDB) RemoveStandbySignal() error {
	f.calls = append(f.calls, "no standby.signal")
	return nil
}
func (f *fakeDB) EnsureStandbySignal() error {
	f.calls = append(f.calls, "standby.signal")
	return nil
}
func (f *fakeDB) PostmasterStarted() (time.Time, bool) { return f.started, !f.started.IsZero() }
func (f *fakeDB) ControlData(context.Context) (postgres.ControlData, error) {
	f.calls = append(f.calls, "controldata")
	return postgres.ControlData{State: "shut down", Checkpoint: 0x3000060}, nil
}

func (f *fakeDB) Checkpoint(context.Context, string) error {
	f.calls = append(f.calls, "checkpoint")
	return nil
}

// fakeVIP is an address that is held or not.
type fakeVIP struct {
	held       bool
	acquireErr error
	calls      []string
}

func (f *fakeVIP) Acquire(context.Context) error {
	f.calls = append(f.calls, "acquire")
	if f.acquireErr != nil {
		return f.acquireErr
	}
	f.held = true
	return nil
}
func (f *fakeVIP) Release(context.Context) error {
	f.calls = append(f.calls, "release")
	f.held = false
	return nil
}
func (f *fakeVIP) Held() bool { return f.held }

// Whatever decided it, nothing that lets this node take writes runs
// without a lease valid past the fence margin at the moment it runs (an
// isolated primary whose postmaster crashed must not be restarted
// writable by primary.restart.timeout), while everything that stops
// writes always runs.
func TestExecutorChecksTheLeaseWhenItActs(t *testing.T) {
	ctx := context.Background()
	const margin = time.Second
	for _, c := range []struct {
		name    string
		validTo time.Duration // how long the lease is certainly valid
		wantDB  []string
		wantVIP []string
		refused int // how many of start, promote, takeVIP were refused
	}{
		{"lease valid well past twice the margin", 5 * time.Second,
			[]string{"start", "promote", "stop fast", "standby.signal", "stop immediate", "standby.signal", "follow 10.0.0.2", "restart"},
			[]string{"acquire", "release"}, 0},
		{"lease valid past the margin but not twice: no address", 1500 * time.Millisecond,
			[]string{"start", "promote", "stop fast", "standby.signal", "stop immediate", "standby.signal", "follow 10.0.0.2", "restart"},
			nil, 1},
		{"isolated: lease within the margin", 500 * time.Millisecond,
			[]string{"stop fast", "standby.signal", "stop immediate", "standby.signal", "follow 10.0.0.2", "restart"},
			nil, 3},
		{"no lease at all", 0,
			[]string{"stop fast", "standby.signal", "stop immediate", "standby.signal", "follow 10.0.0.2", "restart"},
			nil, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, addr := &fakeDB{}, &fakeVIP{}
			e := &executor{db: db, vip: addr, margin: margin,
				leaseValidFor: func(d time.Duration) bool { return d < c.validTo }}
			refused := 0
			count := func(err error) {
				if errors.Is(err, errLease) {
					refused++
				} else if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
			}
			count(e.start(ctx, time.Second))
			count(e.promote(ctx, "", time.Second))
			_, err := e.takeVIP(ctx)
			count(err)
			count(e.stop(ctx, "fast", time.Second))
			_, stopErr := e.fence(ctx, time.Second)
			count(stopErr)
			count(e.keepDown())
			count(e.follow(ctx, "", "10.0.0.2", 5432, "postgres", "n1", time.Second))
			addr.held = true // released whatever the lease
			_, err = e.releaseVIP(ctx)
			count(err)
			if refused != c.refused {
				t.Errorf("refused %d actions, want %d", refused, c.refused)
			}
			if !slices.Equal(db.calls, c.wantDB) {
				t.Errorf("database saw %q, want %q", db.calls, c.wantDB)
			}
			wantVIP := c.wantVIP
			if wantVIP == nil {
				wantVIP = []string{"release"}
			}
			if !slices.Equal(addr.calls, wantVIP) {
				t.Errorf("address saw %q, want %q", addr.calls, wantVIP)
			}
		})
	}
}

// An address that fails to come up fully is not left half-assigned.
func TestExecutorUndoesAFailedVIP(t *testing.T) {
	addr := &fakeVIP{acquireErr: errors.New("announce failed")}
	e := &executor{db: &fakeDB{}, vip: addr, margin: time.Second, leaseValidFor: func(time.Duration) bool { return true }}
	if taken, err := e.takeVIP(context.Background()); taken || err == nil {
		t.Fatalf("takeVIP = %v, %v; want the failure", taken, err)
	}
	if !slices.Equal(addr.calls, []string{"acquire", "release"}) || addr.held {
		t.Errorf("address saw %q (held %v), want acquire then release", addr.calls, addr.held)
	}
	// Without virtual.ip nothing happens.
	e.vip = nil
	if taken, err := e.takeVIP(context.Background()); taken || err != nil {
		t.Errorf("takeVIP without an address = %v, %v", taken, err)
	}
}

func (f *fakeDB) Rewind(_ context.Context, _ string, dryRun bool, _ time.Duration) (postgres.Rewind, error) {
	f.calls = append(f.calls, fmt.Sprintf("rewind dry-run=%t", dryRun))
	return postgres.Rewind{}, nil
}

func (f *fakeDB) DiscardedWAL(context.Context, cluster.LSN, uint32, time.Duration) (postgres.Discarded, error) {
	return postgres.Discarded{}, nil
}

func (f *fakeDB) Basebackup(context.Context, string, int, string, postgres.BackupOptions, time.Duration) (string, error) {
	f.calls = append(f.calls, "basebackup")
	return "", nil
}

func (f *fakeDB) SetStandbySetting(string, string) error { return nil }

// stop.failed.primary stops the postmaster it was decided on, never one
// started since (the decision may wait for the executor while an operator
// starts the database again).
func TestExecutorStopsOnlyThePostmasterDecidedOn(t *testing.T) {
	ctx := context.Background()
	failed := time.Date(2026, 12, 7, 10, 44, 45, 0, time.UTC)
	for _, c := range []struct {
		name    string
		running time.Time
		want    []string
		stopped bool
	}{
		{"the failed postmaster still runs", failed, []string{"stop immediate"}, true},
		{"another postmaster started since", failed.Add(25 * time.Second), nil, false},
		{"no postmaster runs", time.Time{}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := &fakeDB{started: c.running}
			e := &executor{db: db}
			stopped, err := e.stopStartedAt(ctx, failed, "immediate", time.Second)
			if err != nil || stopped != c.stopped || !slices.Equal(db.calls, c.want) {
				t.Fatalf("stopped %t, err %v, database saw %q; want stopped %t and %q", stopped, err, db.calls, c.stopped, c.want)
			}
		})
	}
}

// A stale primary is fenced on an observation that may be old by the time
// the executor acts: the postmaster seen writable is stopped, and so is
// any postmaster writable now, but not one started since that is not (an
// operator starting it as a standby).
func TestExecutorFencesOnlyAWritableOrTheSeenPostmaster(t *testing.T) {
	ctx := context.Background()
	seen := time.Date(2026, 12, 7, 12, 21, 19, 0, time.UTC)
	for _, c := range []struct {
		name        string
		running     time.Time
		writableNow bool
		want        []string
	}{
		{"the postmaster seen writable still runs", seen, false, []string{"standby.signal", "stop immediate"}},
		{"another postmaster, writable now", seen.Add(27 * time.Second), true, []string{"standby.signal", "stop immediate"}},
		{"another postmaster, not writable", seen.Add(27 * time.Second), false, []string{"standby.signal"}},
		{"no postmaster runs", time.Time{}, false, []string{"standby.signal"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := &fakeDB{started: c.running}
			e := &executor{db: db}
			signalErr, stopErr := e.fenceStale(ctx, seen, c.writableNow, time.Second)
			if signalErr != nil || stopErr != nil || !slices.Equal(db.calls, c.want) {
				t.Fatalf("errors %v %v, database saw %q; want %q", signalErr, stopErr, db.calls, c.want)
			}
		})
	}
}

func (f *fakeDB) SetSyncStandbyNames(context.Context, string, string) error { return nil }
