package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

func observe(t *testing.T, n *testenv.PGNode) cluster.DBObservation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := postgres.Observe(ctx, n.ConnString("postgres"))
	if err != nil {
		t.Fatalf("Observe(%s): %v", n, err)
	}
	if !obs.Up || obs.Error != "" {
		t.Fatalf("Observe(%s) = %+v, want up without error", n, obs)
	}
	return obs
}

func TestObservePrimary(t *testing.T) {
	t.Parallel()
	p := testenv.NewPGCluster(t, testenv.PGOptions{}).Primary()

	before := observe(t, p)
	if before.InRecovery || before.Timeline != 1 || before.CurrentLSN == 0 {
		t.Fatalf("primary observed as %+v, want not in recovery, timeline 1, a current LSN", before)
	}
	if before.ReceiveLSN != 0 || before.ReplayLSN != 0 || before.WalReceiver != "" || before.SenderHost != "" {
		t.Fatalf("primary has standby fields set: %+v", before)
	}
	if before.Version < 120000 || before.SystemID == "" {
		t.Fatalf("version %d, system id %q", before.Version, before.SystemID)
	}
	var sysID string
	p.QueryRow(t, "SELECT system_identifier::text FROM pg_control_system()", &sysID)
	if before.SystemID != sysID {
		t.Fatalf("system id %q, want %q", before.SystemID, sysID)
	}

	p.Exec(t, "CREATE TABLE t AS SELECT generate_series(1, 100) AS v")
	after := observe(t, p)
	if after.CurrentLSN <= before.CurrentLSN {
		t.Fatalf("current LSN %v did not advance past %v after a write", after.CurrentLSN, before.CurrentLSN)
	}
	if after.LSN() != after.CurrentLSN {
		t.Fatalf("LSN() = %v, want the current LSN %v", after.LSN(), after.CurrentLSN)
	}
}

func TestObserveStandby(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	p, s := c.Primary(), c.Standbys()[0]

	obs := observe(t, s)
	if !obs.InRecovery || obs.Timeline != 1 || obs.CurrentLSN != 0 {
		t.Fatalf("standby observed as %+v, want in recovery on timeline 1 without a current LSN", obs)
	}
	if obs.WalReceiver != "streaming" || obs.SenderHost != p.Host {
		t.Fatalf("wal receiver %q from %q, want streaming from %q", obs.WalReceiver, obs.SenderHost, p.Host)
	}
	if prim := observe(t, p); obs.SystemID != prim.SystemID {
		t.Fatalf("standby system id %q, primary's %q", obs.SystemID, prim.SystemID)
	}

	p.Exec(t, "CREATE TABLE t AS SELECT generate_series(1, 100) AS v")
	target := observe(t, p).CurrentLSN
	testenv.WaitFor(t, 10*time.Second, "standby receives and replays the write", func() (bool, error) {
		o := observe(t, s)
		return o.ReceiveLSN >= target && o.ReplayLSN >= target && o.LSN() >= target, nil
	})
}

// A standby that cannot reach its primary has no WAL receiver and, after a
// restart, no received LSN: those NULLs must not break the probe.
func TestObserveStandbyWithoutPrimary(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	p, s := c.Primary(), c.Standbys()[0]
	p.Stop(t, "fast")
	s.Stop(t, "fast")
	s.Start(t)

	obs := observe(t, s)
	if !obs.InRecovery || obs.Timeline != 1 || obs.ReplayLSN == 0 || obs.SenderHost != "" {
		t.Fatalf("orphaned standby observed as %+v, want in recovery, timeline 1 from its checkpoint, a replay LSN, no sender", obs)
	}
	if obs.LSN() == 0 {
		t.Fatal("LSN() is unknown for a standby that replayed WAL")
	}
}

// The timeline must change at promotion, before any checkpoint records it.
func TestObservePromotedStandby(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	s := c.Standbys()[0]
	c.Primary().Stop(t, "fast")
	s.Exec(t, "SELECT pg_promote(true, 60)")

	obs := observe(t, s)
	if obs.InRecovery || obs.Timeline != 2 || obs.CurrentLSN == 0 {
		t.Fatalf("promoted standby observed as %+v, want a primary on timeline 2", obs)
	}
}

func TestObserveDown(t *testing.T) {
	t.Parallel()
	const connectTimeout = 2 * time.Second
	stopped := testenv.NewPGCluster(t, testenv.PGOptions{}).Primary()
	stopped.Stop(t, "immediate")
	nobody := testenv.Hosts(t, 1)[0]

	for name, conn := range map[string]string{
		"stopped server": postgres.ConnString(stopped.Host, stopped.Port, "postgres", "postgres", "disable", connectTimeout),
		"no listener":    postgres.ConnString(nobody, testenv.FreePort(t, nobody), "postgres", "postgres", "disable", connectTimeout),
	} {
		start := time.Now()
		obs, err := postgres.Observe(context.Background(), conn)
		took := time.Since(start)
		if err == nil || obs.Up || obs.Error == "" || !strings.Contains(obs.Error, err.Error()) {
			t.Fatalf("%s: Observe = %+v, %v; want down with the error", name, obs, err)
		}
		if took >= connectTimeout {
			t.Fatalf("%s: Observe took %v, more than the connect timeout", name, took)
		}
	}
}

func TestObserveHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	host := testenv.Hosts(t, 1)[0]
	obs, err := postgres.Observe(ctx, postgres.ConnString(host, testenv.FreePort(t, host), "postgres", "postgres", "disable", 0))
	if err == nil || obs.Up {
		t.Fatalf("Observe with a cancelled context = %+v, %v", obs, err)
	}
}
