package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

// TestSyncStandbyNames sets synchronous_standby_names on a primary and on
// a standby (ALTER SYSTEM works in recovery too), reads it back as the
// server applies it, and checks that a commit then waits for the named
// standby and no other.
func TestSyncStandbyNames(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p, s := c.Primary(), c.Nodes[1]
	read := func(n *testenv.PGNode) string {
		t.Helper()
		v, err := postgres.SyncStandbyNames(ctx, n.ConnString("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := `ANY 1 ("` + s.Name + `")`
	for _, n := range []*testenv.PGNode{p, s} {
		if err := server(n).SetSyncStandbyNames(ctx, n.ConnString("postgres"), want); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if got := read(n); got != want {
			t.Fatalf("%s applies %q, want %q", n.Name, got, want)
		}
		// Setting what is applied already changes nothing.
		if err := server(n).SetSyncStandbyNames(ctx, n.ConnString("postgres"), want); err != nil {
			t.Fatalf("%s again: %v", n.Name, err)
		}
	}
	p.Exec(t, "CREATE TABLE sync_t (v int)")
	var state string
	p.QueryRow(t, "SELECT sync_state FROM pg_stat_replication WHERE application_name = '"+s.Name+"'", &state)
	if state != "quorum" {
		t.Errorf("the standby's sync_state is %q, want quorum", state)
	}

	// Naming a standby that does not exist: a commit waits.
	if err := server(p).SetSyncStandbyNames(ctx, p.ConnString("postgres"), `ANY 1 ("nobody")`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, p.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = conn.Exec(qctx, "INSERT INTO sync_t VALUES (1)")
	qcancel()
	conn.Close(ctx)
	if err == nil {
		t.Fatal("a commit was acknowledged with no synchronous standby connected")
	}
	if err := server(p).SetSyncStandbyNames(ctx, p.ConnString("postgres"), ""); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, "INSERT INTO sync_t VALUES (2)")
	if got := read(p); got != "" {
		t.Errorf("cleared, the primary applies %q", got)
	}
}
