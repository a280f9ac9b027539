package postgres_test

import (
	"context"
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
