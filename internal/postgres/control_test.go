package postgres_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

// Bounds of the control tests' steps.
const (
	ctlTimeout  = 30 * time.Second
	testTimeout = 3 * time.Minute
	replTimeout = 30 * time.Second
)

func server(n *testenv.PGNode) postgres.Server {
	return postgres.Server{BinDir: n.BinDir, Owner: n.Owner, DataDir: n.DataDir, LogFile: n.LogFile}
}

func inRecovery(t *testing.T, n *testenv.PGNode) bool {
	t.Helper()
	var rec bool
	n.QueryRow(t, "SELECT pg_is_in_recovery()", &rec)
	return rec
}

// timed runs step and logs how long it took.
func timed(t *testing.T, what string, step func() error) {
	t.Helper()
	start := time.Now()
	if err := step(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
}

func receiveLSN(t *testing.T, n *testenv.PGNode) cluster.LSN {
	t.Helper()
	var s string
	n.QueryRow(t, "SELECT pg_last_wal_receive_lsn()::text", &s)
	lsn, err := cluster.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// hasRow reports whether table t on n holds v yet.
func hasRow(n *testenv.PGNode, v int) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString("postgres"))
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var count int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE v = $1", v).Scan(&count)
	return count == 1, err
}

// assertOwnedByOwner checks the server's owner, not root, owns path.
func assertOwnedByOwner(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if got := st.Sys().(*syscall.Stat_t).Uid; got != uint32(uid) {
		t.Fatalf("%s owned by uid %d, want postgres (%d)", path, got, uid)
	}
}

// TestFailover plays a failover with the control steps: fence the primary,
// promote the most advanced standby, re-point the other standby at it while
// it runs and the old primary while it is stopped.
func TestFailover(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 2})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	old := c.Primary()
	old.Exec(t, "CREATE TABLE t (v int)")
	old.Exec(t, "INSERT INTO t VALUES (1)")
	for _, s := range c.Standbys() {
		testenv.WaitFor(t, replTimeout, s.Name+" has row 1", func() (bool, error) { return hasRow(s, 1) })
	}

	// Fence: immediate stop, twice.
	oldS := server(old)
	timed(t, "stop -m immediate", func() error { return oldS.Stop(ctx, "immediate", ctlTimeout) })
	if old.Running(t) || oldS.PostmasterPID() != 0 {
		t.Fatal("old primary still runs after Stop")
	}
	timed(t, "stop a stopped server", func() error { return oldS.Stop(ctx, "immediate", ctlTimeout) })

	// Promote the standby with the most WAL, so the other can follow it.
	newP, other := c.Nodes[1], c.Nodes[2]
	if receiveLSN(t, other) > receiveLSN(t, newP) {
		newP, other = other, newP
	}
	newS := server(newP)
	timed(t, "promote "+newP.Name, func() error { return newS.Promote(ctx, newP.ConnString("postgres"), ctlTimeout) })
	if inRecovery(t, newP) {
		t.Fatal("promoted server still in recovery")
	}
	newP.Exec(t, "INSERT INTO t VALUES (2)")
	timed(t, "promote a primary", func() error { return newS.Promote(ctx, newP.ConnString("postgres"), ctlTimeout) })

	// Re-point the running standby.
	otherS := server(other)
	before, err := otherS.PrimaryConninfo(ctx, other.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var restart bool
	timed(t, "follow (running standby)", func() (err error) {
		restart, err = otherS.Follow(ctx, other.ConnString("postgres"), newP.Host, newP.Port, "", other.Name)
		return err
	})
	if restart {
		t.Fatal("Follow of a running PostgreSQL 13+ standby asks for a restart")
	}
	after, err := otherS.PrimaryConninfo(ctx, other.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	assertRepointed(t, before, after, newP)
	start := time.Now()
	testenv.WaitFor(t, replTimeout, other.Name+" streams from "+newP.Name, func() (bool, error) {
		var status, host string
		other.QueryRow(t, "SELECT coalesce(min(status), ''), coalesce(min(sender_host), '') FROM pg_stat_wal_receiver", &status, &host)
		return status == "streaming" && host == newP.Host, nil
	})
	newP.Exec(t, "INSERT INTO t VALUES (3)")
	testenv.WaitFor(t, replTimeout, other.Name+" has row 3", func() (bool, error) { return hasRow(other, 3) })
	t.Logf("%s streaming from %s with a new row: %v", other.Name, newP.Name, time.Since(start).Round(time.Millisecond))
	if obs := observe(t, other); obs.Timeline != 2 {
		t.Fatalf("%s on timeline %d, want 2", other.Name, obs.Timeline)
	}

	// Re-point the stopped old primary: it comes back as a standby.
	timed(t, "standby signal", oldS.EnsureStandbySignal)
	timed(t, "standby signal again", oldS.EnsureStandbySignal)
	assertOwnedByOwner(t, filepath.Join(old.DataDir, postgres.StandbySignalFile))
	timed(t, "follow (stopped server)", func() (err error) {
		restart, err = oldS.Follow(ctx, old.ConnString("postgres"), newP.Host, newP.Port, "", old.Name)
		return err
	})
	if restart {
		t.Fatal("Follow of a stopped server asks for a restart")
	}
	autoConf := filepath.Join(old.DataDir, postgres.AutoConfFile)
	assertOwnedByOwner(t, autoConf)
	text, err := os.ReadFile(autoConf)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := postgres.ConfValue(string(text), "recovery_target_timeline"); v != "latest" {
		t.Fatalf("recovery_target_timeline = %q in\n%s", v, text)
	}
	fromFile, err := oldS.PrimaryConninfo(ctx, old.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := postgres.ParseConninfo(fromFile); err != nil || v["host"] != newP.Host || v["application_name"] != old.Name {
		t.Fatalf("stopped server's primary_conninfo %q (%v): want host %s, application_name %s", fromFile, err, newP.Host, old.Name)
	}
	timed(t, "start old primary", func() error { return oldS.Start(ctx, ctlTimeout) })
	if !inRecovery(t, old) {
		t.Fatal("old primary came back writable")
	}
	if got, err := oldS.PrimaryConninfo(ctx, old.ConnString("postgres")); err != nil || got != fromFile {
		t.Fatalf("running old primary's primary_conninfo %q, %v; want %q", got, err, fromFile)
	}
}

// assertRepointed checks after is before with host, port and
// application_name of the new primary, every other keyword kept.
func assertRepointed(t *testing.T, before, after string, p *testenv.PGNode) {
	t.Helper()
	b, _, err := postgres.ParseConninfo(before)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := postgres.ParseConninfo(after)
	if err != nil {
		t.Fatal(err)
	}
	if a["host"] != p.Host || a["port"] != strconv.Itoa(p.Port) {
		t.Fatalf("primary_conninfo %q does not name %s", after, p)
	}
	if b["sslmode"] == "" {
		t.Fatalf("pg_basebackup's primary_conninfo %q has no sslmode to keep", before)
	}
	delete(a, "host")
	delete(b, "host")
	delete(a, "port")
	delete(b, "port")
	if !maps.Equal(a, b) {
		t.Fatalf("keywords changed: before %q, after %q", before, after)
	}
}

func TestPromoteFallsBackToPgCtl(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sb := c.Standbys()[0]
	// SQL cannot work: the role does not exist.
	bad := postgres.ConnString(sb.Host, sb.Port, "no_such_role", "postgres", "disable", 5*time.Second)
	s := server(sb)
	timed(t, "promote through pg_ctl", func() error { return s.Promote(ctx, bad, ctlTimeout) })
	if inRecovery(t, sb) {
		t.Fatal("still in recovery")
	}
	timed(t, "promote a primary through pg_ctl", func() error { return s.Promote(ctx, bad, ctlTimeout) })
	stopped := server(c.Primary())
	if err := stopped.Stop(ctx, "fast", ctlTimeout); err != nil {
		t.Fatal(err)
	}
	if err := stopped.Promote(ctx, c.Primary().ConnString("postgres"), 2*time.Second); err == nil {
		t.Fatal("promoting a stopped server succeeded")
	}
}

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	p := testenv.NewPGCluster(t, testenv.PGOptions{}).Primary()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s := server(p)
	pid := s.PostmasterPID()
	if pid == 0 {
		t.Fatal("no postmaster pid for a running server")
	}
	if err := s.Stop(ctx, "sudden", ctlTimeout); err == nil {
		t.Fatal("Stop with an unknown mode succeeded")
	}
	timed(t, "start a running server", func() error { return s.Start(ctx, ctlTimeout) })
	if got := s.PostmasterPID(); got != pid {
		t.Fatalf("postmaster pid %d after a no-op start, want %d", got, pid)
	}
	timed(t, "stop -m immediate", func() error { return s.Stop(ctx, "immediate", ctlTimeout) })
	if s.PostmasterPID() != 0 || p.Running(t) {
		t.Fatal("server runs after Stop")
	}
	timed(t, "stop a stopped server", func() error { return s.Stop(ctx, "fast", ctlTimeout) })
	timed(t, "start", func() error { return s.Start(ctx, ctlTimeout) })
	started := s.PostmasterPID()
	if started == 0 || started == pid {
		t.Fatalf("postmaster pid %d after start (was %d)", started, pid)
	}
	timed(t, "restart", func() error { return s.Restart(ctx, ctlTimeout) })
	restarted := s.PostmasterPID()
	if restarted == 0 || restarted == started {
		t.Fatalf("postmaster pid %d after restart (was %d)", restarted, started)
	}
	p.Exec(t, "SELECT 1")
	p.Stop(t, "fast")
	timed(t, "restart a stopped server", func() error { return s.Restart(ctx, ctlTimeout) })
	p.Exec(t, "SELECT 1")
}

// watching reports whether n has a session idling in WatchConnection's LISTEN.
func watching(t *testing.T, n *testenv.PGNode) func() (bool, error) {
	return func() (bool, error) {
		var count int
		n.QueryRow(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN pgfm%' AND pid <> pg_backend_pid()", &count)
		return count == 1, nil
	}
}

type watchResult struct {
	err error
	at  time.Time
}

func watch(ctx context.Context, connString string) <-chan watchResult {
	done := make(chan watchResult, 1)
	go func() {
		err := postgres.WatchConnection(ctx, connString)
		done <- watchResult{err, time.Now()}
	}()
	return done
}

func TestWatchConnection(t *testing.T) {
	t.Parallel()
	p := testenv.NewPGCluster(t, testenv.PGOptions{}).Primary()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// Cancelling ctx ends the watch.
	wctx, wcancel := context.WithCancel(ctx)
	done := watch(wctx, p.ConnString("postgres"))
	testenv.WaitFor(t, ctlTimeout, "watch connected", watching(t, p))
	wcancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled watch: %v, want context.Canceled", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled watch did not return")
	}

	// Killing the postmaster breaks it.
	done = watch(ctx, p.ConnString("postgres"))
	testenv.WaitFor(t, ctlTimeout, "watch connected", watching(t, p))
	select {
	case r := <-done:
		t.Fatalf("watch returned before the kill: %v", r.err)
	default:
	}
	killed := time.Now()
	p.Kill(t)
	select {
	case r := <-done:
		if !errors.Is(r.err, postgres.ErrConnectionLost) {
			t.Fatalf("watch of a killed server: %v, want ErrConnectionLost", r.err)
		}
		if r.at.Before(killed) {
			t.Fatalf("watch returned %v before the kill", killed.Sub(r.at))
		}
		if d := r.at.Sub(killed); d > 2*time.Second {
			t.Fatalf("watch returned %v after the kill, want within 2s", d)
		}
		t.Logf("watch returned %v after SIGKILL: %v", r.at.Sub(killed).Round(time.Millisecond), r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not return after the kill")
	}

	// No server: it returns at once.
	start := time.Now()
	err := postgres.WatchConnection(ctx, p.ConnString("postgres"))
	if err == nil || errors.Is(err, postgres.ErrConnectionLost) || !strings.Contains(err.Error(), "watch connection") {
		t.Fatalf("watch of a dead server: %v", err)
	}
	t.Logf("watch of a dead server failed in %v: %v", time.Since(start).Round(time.Millisecond), err)
}
