package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

// The database steps of a switchover on real servers: the primary,
// pointed at the standby and stopped cleanly, ends its WAL at a shutdown
// checkpoint the standby replays; once the standby is promoted, the old
// primary starts as its standby and streams, with no rewind, and nothing
// written before the stop is lost.
func TestSwitchoverSteps(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	old, next := c.Primary(), c.Nodes[1]
	old.Exec(t, "CREATE TABLE t (v int)")
	old.Exec(t, "INSERT INTO t VALUES (1)")

	// A standby's watch idles too (LISTEN is refused in recovery).
	done := watch(ctx, next.ConnString("postgres"))
	select {
	case r := <-done:
		t.Fatalf("the watch of a standby returned at once: %v", r.err)
	case <-time.After(500 * time.Millisecond):
	}

	oldS, nextS := server(old), server(next)
	timed(t, "follow (running primary)", func() error {
		_, err := oldS.Follow(ctx, old.ConnString("postgres"), next.Host, next.Port, "", old.Name)
		return err
	})
	timed(t, "stop -m fast", func() error { return oldS.Stop(ctx, "fast", ctlTimeout) })
	cd, err := oldS.ControlData(ctx)
	if err != nil || !cd.CleanlyStopped() || cd.Checkpoint == 0 {
		t.Fatalf("pg_controldata after a fast stop: %+v, %v; want a clean stop", cd, err)
	}
	var replayed string
	timed(t, "wait for replay", func() error {
		got, err := postgres.WaitReplayed(ctx, next.ConnString("postgres"), cd.Checkpoint, 5*time.Millisecond)
		replayed = got.String()
		return err
	})
	t.Logf("checkpoint %s, replayed to %s", cd.Checkpoint, replayed)
	timed(t, "promote", func() error { return nextS.Promote(ctx, next.ConnString("postgres"), ctlTimeout) })
	next.Exec(t, "INSERT INTO t VALUES (2)")
	timed(t, "start the old primary", func() error { return oldS.Start(ctx, ctlTimeout) })
	if !inRecovery(t, old) {
		t.Fatal("the old primary came back writable")
	}
	testenv.WaitFor(t, replTimeout, "the old primary replays the new primary's row", func() (bool, error) { return hasRow(old, 2) })
	if ok, err := hasRow(next, 1); !ok || err != nil {
		t.Fatalf("the new primary lost row 1: %v", err)
	}
}

// Rebuilding an old primary on real servers: the standby is promoted while
// the old primary keeps taking writes (a split the rest of pgfm prevents;
// here it makes the divergence), the old primary is killed; pg_rewind
// (recovering it first) finds the fork, pg_waldump counts the commits it
// throws away, and the rewound server starts as a standby of the new
// primary without the diverged rows.
func TestRewindOldPrimary(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	old, next := c.Primary(), c.Nodes[1]
	old.Exec(t, "CREATE TABLE t (v int)")
	old.Exec(t, "INSERT INTO t VALUES (1)")
	testenv.WaitFor(t, replTimeout, "row 1 replicated", func() (bool, error) { return hasRow(next, 1) })

	oldS, nextS := server(old), server(next)
	timed(t, "promote", func() error { return nextS.Promote(ctx, next.ConnString("postgres"), ctlTimeout) })
	next.Exec(t, "INSERT INTO t VALUES (2)")
	for i := 0; i < 3; i++ {
		old.Exec(t, "INSERT INTO t VALUES (100)") // diverged: three commits
	}
	old.Kill(t)
	source := next.ConnString("postgres")
	timed(t, "checkpoint on the new primary", func() error { return postgres.Checkpoint(ctx, source) })
	cd, err := oldS.ControlData(ctx)
	if err != nil || !cd.WasPrimary() || cd.CanRewind() != nil {
		t.Fatalf("control data of the killed primary: %+v, %v", cd, err)
	}
	if err := oldS.EnsureStandbySignal(); err != nil { // as the fence leaves it
		t.Fatal(err)
	}
	var dry postgres.Rewind
	timed(t, "pg_rewind --dry-run", func() (err error) { dry, err = oldS.Rewind(ctx, source, true, ctlTimeout); return err })
	if !dry.Needed || dry.ForkLSN == 0 || dry.ForkTimeline != 1 {
		t.Fatalf("dry run: %+v", dry)
	}
	d, err := oldS.DiscardedWAL(ctx, dry.ForkLSN, dry.ForkTimeline, ctlTimeout)
	if err != nil || d.Commits < 3 {
		t.Fatalf("discarded WAL from %s: %+v, %v; want at least the 3 diverged commits", dry.ForkLSN, d, err)
	}
	t.Logf("discarded: %+v", d)
	timed(t, "pg_rewind", func() error { _, err := oldS.Rewind(ctx, source, false, ctlTimeout); return err })
	timed(t, "follow (stopped)", func() error {
		_, err := oldS.Follow(ctx, old.ConnString("postgres"), next.Host, next.Port, "", old.Name)
		return err
	})
	timed(t, "start", func() error { return oldS.Start(ctx, ctlTimeout) })
	if !inRecovery(t, old) {
		t.Fatal("the rewound server came back writable")
	}
	testenv.WaitFor(t, replTimeout, "the rewound server replays row 2", func() (bool, error) { return hasRow(old, 2) })
	if ok, _ := hasRow(old, 100); ok {
		t.Fatal("the rewound server kept the diverged rows")
	}
}

// pg_basebackup replaces the data directory, keeping the old one aside.
func TestBasebackupOldPrimary(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	old, next := c.Primary(), c.Nodes[1]
	oldS, nextS := server(old), server(next)
	timed(t, "promote", func() error { return nextS.Promote(ctx, next.ConnString("postgres"), ctlTimeout) })
	next.Exec(t, "CREATE TABLE t (v int); INSERT INTO t VALUES (2)")
	old.Kill(t)
	var kept string
	timed(t, "pg_basebackup", func() (err error) {
		kept, err = oldS.Basebackup(ctx, next.Host, next.Port, "postgres", postgres.BackupOptions{}, ctlTimeout)
		return err
	})
	t.Cleanup(func() { os.RemoveAll(kept) })
	if _, err := os.Stat(filepath.Join(kept, "PG_VERSION")); err != nil {
		t.Fatalf("the old data directory was not kept at %q: %v", kept, err)
	}
	timed(t, "follow (stopped)", func() error {
		_, err := oldS.Follow(ctx, old.ConnString("postgres"), next.Host, next.Port, "", old.Name)
		return err
	})
	timed(t, "start", func() error { return oldS.Start(ctx, ctlTimeout) })
	if !inRecovery(t, old) {
		t.Fatal("the copy came up writable")
	}
	testenv.WaitFor(t, replTimeout, "the copy has row 2", func() (bool, error) { return hasRow(old, 2) })
}
