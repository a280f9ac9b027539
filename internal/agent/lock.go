package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile holds lock.dir/CLUSTER.lock so two agents of one cluster never
// run on one host. The kernel drops the lock when the process dies.
//
// The agent runs as root and lock.dir's default, /run/lock/pgfm, sits in a
// directory every local user may write to (/run/lock is world-writable,
// with the sticky bit). So that nobody can make the agent open, truncate
// or write a file of their choosing, lock.dir must be a real directory
// owned by the agent's user and writable by nobody else (pgfm creates it
// 0700 when it is missing), and the lock file is opened without following
// a symbolic link and must be a regular file of ours with one link.
type lockFile struct{ f *os.File }

func acquireLock(dir, cluster string) (*lockFile, error) {
	if err := lockDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, cluster+".lock")
	// O_NONBLOCK: opening a FIFO or a device planted there does not block
	// (checkLockFile then refuses it).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("lock: %s is a symbolic link, which pgfm never creates; remove it (and find out who put it there)", path)
	}
	if errors.Is(err, syscall.EISDIR) {
		return nil, fmt.Errorf("lock: %s is a directory, not a lock file; remove it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := checkLockFile(f, path); err != nil {
		f.Close()
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %s: %w", path, err)
		}
		holder := make([]byte, 32)
		n, _ := f.ReadAt(holder, 0)
		f.Close()
		pid := strings.TrimSpace(string(holder[:n]))
		return nil, fmt.Errorf("another pgfm agent of cluster %q already runs on this host (pid %s holds %s); stop it first (systemctl stop pgfm@%s)", cluster, pid, path, cluster)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &lockFile{f: f}, nil
}

func (l *lockFile) release() {
	_ = l.f.Truncate(0)
	l.f.Close()
}

// lockDir creates lock.dir (0700) when it is missing and checks that it is
// a directory, not a symbolic link, owned by the agent's effective user
// and writable by no one else.
func lockDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("lock: create lock.dir: %w (set lock.dir to a writable directory)", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("lock: create lock.dir: %w (set lock.dir to a writable directory)", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("lock: lock.dir: %w", err)
	}
	euid := os.Geteuid()
	switch st, _ := fi.Sys().(*syscall.Stat_t); {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("lock: lock.dir %s is a symbolic link; set lock.dir to a real directory (the link's target, if it is yours) or remove the link", dir)
	case !fi.IsDir():
		return fmt.Errorf("lock: lock.dir %s is not a directory; remove it or choose another lock.dir", dir)
	case st == nil:
		return fmt.Errorf("lock: lock.dir %s: cannot read its owner", dir)
	case int(st.Uid) != euid:
		return fmt.Errorf("lock: lock.dir %s is owned by uid %d, not by this agent (uid %d); remove it (pgfm creates it), chown it, or choose another lock.dir", dir, st.Uid, euid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("lock: lock.dir %s is writable by others (mode %s); chmod go-w it or choose another lock.dir", dir, fi.Mode().Perm())
	}
	return nil
}

// checkLockFile refuses an open lock file that is not a regular file of
// ours with a single link: it is truncated and written, so it must not be
// (or stand for) anything else.
func checkLockFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("lock: %s is not a regular file (%s); remove it", path, fi.Mode().Type())
	case st == nil:
		return fmt.Errorf("lock: %s: cannot read its owner", path)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("lock: %s is owned by uid %d, not by this agent (uid %d); remove it", path, st.Uid, os.Geteuid())
	case st.Nlink != 1:
		return fmt.Errorf("lock: %s has %d hard links, a lock file has one; remove it", path, st.Nlink)
	}
	return nil
}
