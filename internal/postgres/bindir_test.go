package postgres_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

func TestBinDir(t *testing.T) {
	bin := testenv.RequirePostgres(t)
	empty := testenv.TempDir(t)

	if got, err := postgres.BinDir(bin); got != bin || err != nil {
		t.Fatalf("BinDir(%q) = %q, %v", bin, got, err)
	}
	if _, err := postgres.BinDir(empty); err == nil || !strings.Contains(err.Error(), "db.bin") {
		t.Fatalf("BinDir(dir without pg_ctl) error = %v, want one naming db.bin", err)
	}

	t.Setenv(postgres.BinDirEnv, bin)
	if got, err := postgres.BinDir(""); got != bin || err != nil {
		t.Fatalf("BinDir from %s = %q, %v", postgres.BinDirEnv, got, err)
	}
	t.Setenv(postgres.BinDirEnv, empty)
	if _, err := postgres.BinDir(""); err == nil || !strings.Contains(err.Error(), postgres.BinDirEnv) {
		t.Fatalf("BinDir from a bad %s: error = %v, want one naming it", postgres.BinDirEnv, err)
	}

	// Neither setting nor pg_config on PATH.
	t.Setenv(postgres.BinDirEnv, "")
	t.Setenv("PATH", empty)
	if _, err := postgres.BinDir(""); err == nil || !strings.Contains(err.Error(), "db.bin") {
		t.Fatalf("BinDir with nothing to go on: error = %v, want one naming db.bin", err)
	}
}

func TestBinDirRejectsNonExecutable(t *testing.T) {
	dir := testenv.TempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "pg_ctl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.BinDir(dir); err == nil {
		t.Fatal("BinDir accepted a pg_ctl that is not executable")
	}
}
