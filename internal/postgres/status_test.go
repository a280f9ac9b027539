package postgres_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

func TestServerRunning(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{})
	p := c.Primary()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if ok, err := postgres.ServerRunning(ctx, c.BinDir, p.Owner, p.DataDir); !ok || err != nil {
		t.Fatalf("running server: ServerRunning = %v, %v", ok, err)
	}
	p.Stop(t, "fast")
	if ok, err := postgres.ServerRunning(ctx, c.BinDir, p.Owner, p.DataDir); ok || err != nil {
		t.Fatalf("stopped server: ServerRunning = %v, %v", ok, err)
	}
	missing := filepath.Join(testenv.TempDir(t), "nothing")
	if ok, err := postgres.ServerRunning(ctx, c.BinDir, p.Owner, missing); ok || err == nil {
		t.Fatalf("missing data dir: ServerRunning = %v, %v; want an error", ok, err)
	}
}
