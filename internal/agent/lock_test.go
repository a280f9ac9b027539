package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// flock locks belong to open file descriptions, so a second open+flock in
// the same process conflicts just as another agent's would.
func TestAcquireLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	path := filepath.Join(dir, "main.lock")
	pid := strconv.Itoa(os.Getpid())

	l, err := acquireLock(dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(b)) != pid {
		t.Errorf("lock file holds %q (%v), want our pid %s", b, err, pid)
	}

	l2, err := acquireLock(dir, "main")
	if err == nil {
		l2.release()
		t.Fatal("second acquire on a held lock succeeded")
	}
	for _, w := range []string{"already runs on this host", "pid " + pid, path, "systemctl stop pgfm@main"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	// The failed attempt must not have wiped the holder's pid.
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != pid {
		t.Errorf("after a refused acquire the lock file holds %q", b)
	}

	// Another cluster's lock is independent.
	other, err := acquireLock(dir, "other")
	if err != nil {
		t.Fatalf("lock of another cluster: %v", err)
	}
	other.release()

	l.release()
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("released lock file still holds %q", b)
	}
	l3, err := acquireLock(dir, "main")
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	l3.release()
}

func TestAcquireLockUnwritableDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// lock.dir under a regular file cannot be created.
	_, err := acquireLock(filepath.Join(f, "dir"), "main")
	if err == nil || !strings.Contains(err.Error(), "lock.dir") {
		t.Fatalf("err = %v, want one naming lock.dir", err)
	}
}
