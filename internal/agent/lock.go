package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile holds lock.dir/CLUSTER.lock so two agents of one cluster never
// run on one host. The kernel drops the lock when the process dies.
type lockFile struct{ f *os.File }

func acquireLock(dir, cluster string) (*lockFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock: create lock.dir: %w (set lock.dir to a writable directory)", err)
	}
	path := filepath.Join(dir, cluster+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %s: %w", path, err)
		}
		holder, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(holder))
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
