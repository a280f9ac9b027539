package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/postgres"
)

// PGNode is one PostgreSQL server of a test cluster.
type PGNode struct {
	Name      string // also its application_name as a standby
	Host      string // loopback address it listens on
	Port      int
	DataDir   string
	SocketDir string // its own unix_socket_directories
	LogFile   string // server log (pg_ctl -l)
	BinDir    string
	Owner     string // OS user the server runs as

	mu   sync.Mutex
	pids []int // postmasters started here, killed at cleanup if alive
}

// Timeouts of the harness's commands and SQL.
const (
	cmdTimeout      = 2 * time.Minute
	pgCtlWaitSecs   = "60"
	sqlTimeout      = 30 * time.Second
	connectTimeout  = 5 * time.Second
	shutdownTimeout = 30 * time.Second
)

// ConnString connects to database on this node as postgres.
func (n *PGNode) ConnString(database string) string {
	return postgres.ConnString(n.Host, n.Port, "postgres", database, "disable", connectTimeout)
}

// replicationConnString is what a standby named appName streams through.
func (n *PGNode) replicationConnString(appName string) string {
	return n.ConnString("") + " application_name='" + appName + "'"
}

// Exec runs sql on the postgres database, failing the test on error.
func (n *PGNode) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString("postgres"))
	if err == nil {
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
	}
	if err != nil {
		t.Fatalf("testenv: %s: exec %q: %v", n.Name, sql, err)
	}
}

// QueryRow scans sql's single row into dest, failing the test on error.
func (n *PGNode) QueryRow(t testing.TB, sql string, dest ...any) {
	t.Helper()
	if err := n.queryRow(sql, nil, dest...); err != nil {
		t.Fatalf("testenv: %s: query %q: %v", n.Name, sql, err)
	}
}

func (n *PGNode) queryRow(sql string, args []any, dest ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.ConnString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// Stop stops the server with pg_ctl stop -m mode (smart, fast, immediate) and
// waits for it to be gone.
func (n *PGNode) Stop(t testing.TB, mode string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, err := n.run(ctx, "pg_ctl", "stop", "-D", n.DataDir, "-m", mode, "-w", "-t", pgCtlWaitSecs); err != nil {
		t.Fatalf("testenv: %s: stop: %v", n.Name, err)
	}
}

// Start starts the server and waits until it accepts connections.
func (n *PGNode) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		b, _ := os.ReadFile(n.LogFile)
		t.Fatalf("testenv: %s: start: %v\nthe end of its server log %s:\n%s", n.Name, err, n.LogFile, tail(string(b), 15))
	}
}

func (n *PGNode) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_, err := n.run(ctx, "pg_ctl", "start", "-D", n.DataDir, "-l", n.LogFile, "-w", "-t", pgCtlWaitSecs)
	if pid := n.postmasterPID(); pid > 0 {
		n.mu.Lock()
		n.pids = append(n.pids, pid)
		n.mu.Unlock()
	}
	return err
}

// Kill SIGKILLs the postmaster, as a crash would, and waits until its
// children have exited (so a Start finds no old process attached to shared
// memory) and it has been reaped by its parent, PID 1 or a subreaper (so
// pg_ctl and a new postmaster do not take its zombie for a live server).
func (n *PGNode) Kill(t testing.TB) {
	t.Helper()
	pid := n.postmasterPID()
	if !alive(pid) {
		t.Fatalf("testenv: %s: kill: no running postmaster", n.Name)
	}
	kids := children(pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("testenv: %s: kill %d: %v", n.Name, pid, err)
	}
	// A zombie that never goes means PID 1 does not reap orphans: run the
	// tests under an init (e.g. docker run --init).
	WaitFor(t, shutdownTimeout, n.Name+": killed postmaster exits and is reaped", func() (bool, error) {
		return allDead(kids) && reaped(pid), nil
	})
}

// Running reports whether pg_ctl status sees the server running.
func (n *PGNode) Running(t testing.TB) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	ok, err := postgres.ServerRunning(ctx, n.BinDir, n.Owner, n.DataDir)
	if err != nil {
		t.Fatalf("testenv: %s: %v", n.Name, err)
	}
	return ok
}

// run runs a PostgreSQL program as the node's owner.
func (n *PGNode) run(ctx context.Context, program string, args ...string) (string, error) {
	cmd, err := postgres.Command(ctx, n.BinDir, n.Owner, program, args...)
	if err != nil {
		return "", err
	}
	return postgres.Run(cmd)
}

// postmasterPID reads the pid in postmaster.pid; 0 when there is none.
func (n *PGNode) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// shutdown stops whatever runs in the node's data directory, whoever started
// it, then kills any postmaster or child still alive. It reports problems
// without stopping, so every node gets cleaned up.
func (n *PGNode) shutdown(t testing.TB) {
	pid := n.postmasterPID()
	n.mu.Lock()
	pids := append([]int{pid}, n.pids...)
	n.mu.Unlock()
	var procs []int
	for _, p := range pids {
		if alive(p) {
			procs = append(procs, p)
			procs = append(procs, children(p)...)
		}
	}
	if len(procs) == 0 {
		return
	}
	if alive(pid) {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		if _, err := n.run(ctx, "pg_ctl", "stop", "-D", n.DataDir, "-m", "immediate", "-w", "-t", "20"); err != nil {
			t.Logf("testenv: %s: cleanup stop: %v", n.Name, err)
		}
		cancel()
	}
	killAll(procs)
	if err := poll(shutdownTimeout, func() (bool, error) { return allDead(procs), nil }); err != nil {
		t.Errorf("testenv: %s: processes %v outlived cleanup: %v", n.Name, procs, err)
	}
}

// String names the node in test output.
func (n *PGNode) String() string { return fmt.Sprintf("%s(%s:%d)", n.Name, n.Host, n.Port) }
