package testenv

import (
	"os"
	"testing"
)

// TempDir makes a short directory, /tmp/pgfm-NNN, removed when the test ends.
// It is short because Unix socket paths must stay under ~100 bytes (t.TempDir's
// are too long), and mode 0755 so the postgres user can reach what is inside.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgfm-")
	if err != nil {
		t.Fatalf("testenv: temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove %s: %v", dir, err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: chmod %s: %v", dir, err)
	}
	return dir
}

// ScriptDir is a TempDir for scripts the agents run and the files those
// write: agents running as root run scripts as db.service.owner, which must
// be able to create files there.
func ScriptDir(t testing.TB) string {
	t.Helper()
	dir := TempDir(t)
	chownToOwner(t, dir)
	return dir
}
