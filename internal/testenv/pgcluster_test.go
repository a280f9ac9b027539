package testenv

import (
	"testing"
	"time"
)

func TestPGClusterReplicatesARow(t *testing.T) {
	start := time.Now()
	c := NewPGCluster(t, PGOptions{Standbys: 1})
	t.Logf("primary + 1 standby ready in %v", time.Since(start).Round(time.Millisecond))
	p, s := c.Primary(), c.Standbys()[0]

	p.Exec(t, "CREATE TABLE t (v text); INSERT INTO t VALUES ('hello')")
	WaitFor(t, 10*time.Second, "row replicated to standby", func() (bool, error) {
		var v string
		err := s.queryRow("SELECT v FROM t", nil, &v)
		return err == nil && v == "hello", err
	})

	var inRecovery bool
	s.QueryRow(t, "SELECT pg_is_in_recovery()", &inRecovery)
	if !inRecovery {
		t.Fatal("standby is not in recovery")
	}
	var app string
	p.QueryRow(t, "SELECT application_name FROM pg_stat_replication", &app)
	if app != s.Name {
		t.Fatalf("standby streams as %q, want %q", app, s.Name)
	}
}

func TestPGNodeStopStartKill(t *testing.T) {
	c := NewPGCluster(t, PGOptions{})
	p := c.Primary()
	if !p.Running(t) {
		t.Fatal("primary not running after create")
	}
	p.Stop(t, "fast")
	if p.Running(t) {
		t.Fatal("primary running after stop")
	}
	p.Start(t)
	p.Exec(t, "CREATE TABLE t ()")
	p.Kill(t)
	if p.Running(t) {
		t.Fatal("primary running after kill")
	}
	// A crashed server starts again (crash recovery) once its children are gone.
	p.Start(t)
	p.Exec(t, "SELECT FROM t")
}
