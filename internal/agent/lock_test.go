package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

func TestAcquireLockCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgfm")
	l, err := acquireLock(dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, filepath.Join(dir, "main.lock"): 0o600} {
		if fi, err := os.Lstat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
}

// A local user who can write where lock.dir is (the default's parent,
// /run/lock, is world-writable) must not make the root agent open, truncate
// or write another file.
func TestAcquireLockRefusesUnsafe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, lock, victim string) // dir exists, 0700, empty
		want  string
	}{
		{"existing 0755 dir of ours", func(t *testing.T, dir, _, _ string) { chmodT(t, dir, 0o755) }, ""},
		{"stale lock file of ours", func(t *testing.T, _, lock, _ string) { writeT(t, lock, "123\n", 0o644) }, ""},
		{"symlink at the lock path", func(t *testing.T, _, lock, victim string) { symlinkT(t, victim, lock) },
			"is a symbolic link, which pgfm never creates"},
		{"dangling symlink at the lock path", func(t *testing.T, _, lock, victim string) { symlinkT(t, victim+".new", lock) },
			"is a symbolic link"},
		{"hard link at the lock path", func(t *testing.T, _, lock, victim string) {
			if err := os.Link(victim, lock); err != nil {
				t.Fatal(err)
			}
		}, "has 2 hard links"},
		{"directory at the lock path", func(t *testing.T, _, lock, _ string) { mkdirT(t, lock) }, "is a directory, not a lock file"},
		{"fifo at the lock path", func(t *testing.T, _, lock, _ string) {
			if err := syscall.Mkfifo(lock, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
		{"world-writable lock.dir", func(t *testing.T, dir, _, _ string) { chmodT(t, dir, 0o777) },
			"is writable by others (mode -rwxrwxrwx); chmod go-w it or choose another lock.dir"},
		{"world-writable sticky lock.dir", func(t *testing.T, dir, _, _ string) { chmodT(t, dir, 0o777|os.ModeSticky) },
			"is writable by others"},
		{"group-writable lock.dir", func(t *testing.T, dir, _, _ string) { chmodT(t, dir, 0o770) }, "is writable by others"},
		{"lock.dir is a symlink", func(t *testing.T, dir, _, _ string) {
			real := dir + ".real"
			mkdirT(t, real)
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			symlinkT(t, real, dir)
		}, "is a symbolic link; set lock.dir to a real directory"},
		{"lock.dir is a file", func(t *testing.T, dir, _, _ string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			writeT(t, dir, "", 0o600)
		}, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir, victim := filepath.Join(base, "lockdir"), filepath.Join(base, "victim")
			mkdirT(t, dir)
			writeT(t, victim, "precious\n", 0o600)
			lock := filepath.Join(dir, "main.lock")
			tc.setup(t, dir, lock, victim)

			l, err := acquireLock(dir, "main")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				l.release()
			} else if err == nil {
				l.release()
				t.Fatal("acquired")
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
				t.Errorf("the victim holds %q (%v)", b, err)
			}
			if _, err := os.Lstat(victim + ".new"); err == nil {
				t.Error("a file was created through a dangling symlink")
			}
		})
	}
}

// A lock.dir someone else owns is refused, even when it is not writable by
// others: its owner could replace the lock file at any time.
func TestAcquireLockRefusesForeignDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory away")
	}
	dir := filepath.Join(t.TempDir(), "lockdir")
	mkdirT(t, dir)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := acquireLock(dir, "main")
	if err == nil || !strings.Contains(err.Error(), "is owned by uid 65534, not by this agent (uid 0)") {
		t.Fatalf("err = %v", err)
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "main.lock")
	writeT(t, lock, "", 0o600)
	if err := os.Chown(lock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = acquireLock(dir, "main")
	if err == nil || !strings.Contains(err.Error(), "main.lock is owned by uid 65534") {
		t.Fatalf("err = %v", err)
	}
}

func chmodT(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdirT(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlinkT(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func writeT(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}
