package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one local PostgreSQL server, the postmaster the agent owns. Its
// methods are the control steps of a failover; each is idempotent (doing
// what is already done succeeds), honours ctx and is bounded in time. Every
// PostgreSQL program runs through Command, so as Owner when we are root.
type Server struct {
	BinDir  string // directory holding pg_ctl
	Owner   string // OS user the server runs as (db.service.owner)
	DataDir string
	// ConfigDir holds postgresql.conf when it is not DataDir (Debian's
	// /etc/postgresql/...); "" means DataDir.
	ConfigDir string
	// LogFile receives the server's output (pg_ctl -l). "" discards it:
	// set it, or logging_collector, to keep the server's log.
	LogFile string
	// SSLMode is jdbc.sslmode for the connections this server and its
	// programs make to a primary: pg_basebackup's, and primary_conninfo
	// when it names no sslmode (Follow). "" leaves libpq's default.
	SSLMode string
	// Password gives pg_basebackup db.user's password (nil: none; libpq's
	// ~/.pgpass still applies). pg_rewind takes it from its source string.
	Password *Password
}

// Names of the files of a data directory that control recovery.
const (
	StandbySignalFile  = "standby.signal"
	RecoverySignalFile = "recovery.signal"
	PostmasterPIDFile  = "postmaster.pid"
)

// Bounds of the steps that take no timeout of their own.
const (
	// pgCtlSlack is how long pg_ctl may outlive its own -t wait before it
	// is killed: it must be allowed to report its timeout itself.
	pgCtlSlack = 5 * time.Second
	// statusTimeout bounds pg_ctl status.
	statusTimeout = 10 * time.Second
	// sqlTimeout bounds the SQL of Follow and PrimaryConninfo, connecting
	// included.
	sqlTimeout = 30 * time.Second
	// reloadTimeout bounds pg_ctl reload.
	reloadTimeout = 10 * time.Second
)

// minVersion is the oldest server Follow and the signal files work for:
// PostgreSQL 12 replaced recovery.conf with them.
const minVersion = 120000

// StopModes are pg_ctl stop's shutdown modes. "immediate" is the fence: a
// fast shutdown of a primary cut off from its standbys waits for its WAL
// senders up to wal_sender_timeout.
var StopModes = []string{"smart", "fast", "immediate"}

// configDir is where postgresql.conf lives.
func (s Server) configDir() string {
	if s.ConfigDir != "" {
		return s.ConfigDir
	}
	return s.DataDir
}

// Running reports whether a postmaster runs for the data directory, as
// pg_ctl status sees it.
func (s Server) Running(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return ServerRunning(ctx, s.BinDir, s.Owner, s.DataDir)
}

// stopSignals are the postmaster's shutdown requests, as pg_ctl stop -m
// sends them.
var stopSignals = map[string]syscall.Signal{"smart": syscall.SIGTERM, "fast": syscall.SIGINT, "immediate": syscall.SIGQUIT}

// stopPoll is how often Stop looks whether the postmaster is gone: pg_ctl
// looks every 100 ms, which a switchover and a fence would wait on.
const stopPoll = 10 * time.Millisecond

// Stop stops the server in mode (smart, fast or immediate) and waits up to
// timeout for the postmaster to be gone. It signals the postmaster named
// in postmaster.pid itself, as pg_ctl does, and looks every 10 ms; where
// it may not signal it (not root, not its owner) it runs pg_ctl stop.
// Stopping a stopped server succeeds. An error means the server may still
// run: a fence that failed.
func (s Server) Stop(ctx context.Context, mode string, timeout time.Duration) error {
	sig, ok := stopSignals[mode]
	if !validStopMode(mode) || !ok {
		return fmt.Errorf("postgres: stop %s: unknown mode %q: use one of %s", s.DataDir, mode, strings.Join(StopModes, ", "))
	}
	pid := s.PostmasterPID()
	if pid == 0 || !isPostmaster(pid) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return s.stopWithPgCtl(ctx, mode, timeout)
	}
	deadline := time.Now().Add(timeout)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: stop -m %s %s: the postmaster (pid %d) still runs after %s", mode, s.DataDir, pid, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: stop -m %s %s: %w", mode, s.DataDir, ctx.Err())
		case <-time.After(stopPoll):
		}
	}
	return nil
}

// isPostmaster says whether pid runs PostgreSQL's server program, so that
// a pid reused by another process after a crash is not signalled. Without
// /proc it trusts postmaster.pid, as pg_ctl does.
func isPostmaster(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	comm := strings.TrimSpace(string(b))
	return strings.HasPrefix(comm, "postgres") || strings.HasPrefix(comm, "postmaster")
}

// stopWithPgCtl runs pg_ctl stop -m mode as the server's owner.
func (s Server) stopWithPgCtl(ctx context.Context, mode string, timeout time.Duration) error {
	_, err := s.pgCtl(ctx, timeout, "stop", "-D", s.DataDir, "-m", mode, "-w", "-t", waitSecs(timeout))
	if err == nil {
		return nil
	}
	// pg_ctl fails too when the server went away between our look and its
	// signal: what counts is that it is gone now.
	if running, serr := s.Running(ctx); serr == nil && !running {
		return nil
	}
	return fmt.Errorf("postgres: stop -m %s %s: %w", mode, s.DataDir, err)
}

func validStopMode(mode string) bool {
	for _, m := range StopModes {
		if m == mode {
			return true
		}
	}
	return false
}

// Start starts the server with pg_ctl start and waits up to timeout for it
// to accept connections (a standby: to reach a consistent state). Starting
// a running server succeeds. If ctx ends or the wait times out, the server
// may still be starting: pg_ctl detaches it.
func (s Server) Start(ctx context.Context, timeout time.Duration) error {
	running, err := s.Running(ctx)
	if err != nil {
		return fmt.Errorf("postgres: start: %w", err)
	}
	if running {
		return nil
	}
	logFile := s.LogFile
	if logFile == "" {
		// Without -l the postmaster would inherit pg_ctl's output pipe and
		// keep it open for its whole life.
		logFile = os.DevNull
	}
	if _, err := s.pgCtl(ctx, timeout, "start", "-D", s.configDir(), "-l", logFile, "-w", "-t", waitSecs(timeout)); err != nil {
		return fmt.Errorf("postgres: start %s: %w", s.configDir(), err)
	}
	return nil
}

// Restart stops the server (fast) and starts it, each step bounded by
// timeout. It starts a stopped server.
func (s Server) Restart(ctx context.Context, timeout time.Duration) error {
	if err := s.Stop(ctx, "fast", timeout); err != nil {
		return fmt.Errorf("postgres: restart: %w", err)
	}
	if err := s.Start(ctx, timeout); err != nil {
		return fmt.Errorf("postgres: restart: %w", err)
	}
	return nil
}

// ErrPromoteTimeout says the server did not finish its promotion within the
// wait; it may still finish it. Promote again to wait more.
var ErrPromoteTimeout = errors.New("promotion not finished in time")

// Promote turns a standby into a primary and waits up to wait for it to
// leave recovery: pg_promote over connString, or pg_ctl promote when SQL
// fails (no connection, no right to pg_promote). Promoting a server out of
// recovery succeeds.
func (s Server) Promote(ctx context.Context, connString string, wait time.Duration) error {
	sqlErr := promoteSQL(ctx, connString, wait)
	if sqlErr == nil || errors.Is(sqlErr, ErrPromoteTimeout) {
		return sqlErr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("postgres: promote: %w", sqlErr)
	}
	_, err := s.pgCtl(ctx, wait, "promote", "-D", s.DataDir, "-w", "-t", waitSecs(wait))
	if err == nil {
		return nil
	}
	// pg_ctl refuses to promote a primary: find out whether that is why.
	if primary, perr := s.runningOutOfRecovery(ctx); perr == nil && primary {
		return nil
	}
	return fmt.Errorf("postgres: promote %s: sql: %v; pg_ctl: %w", s.DataDir, sqlErr, err)
}

// promoteSQL promotes through pg_promote, unless the server is out of
// recovery already. It asks without waiting and then looks every
// promotePoll on the same connection: pg_promote's own wait looks only
// every 100 ms, and every write waits for the promotion.
func promoteSQL(ctx context.Context, connString string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait+pgCtlSlack)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	var signalled bool
	err = conn.QueryRow(ctx, `SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(wait => false) ELSE true END`).Scan(&signalled)
	if err != nil {
		return err
	}
	if !signalled {
		return fmt.Errorf("postgres: promote: the server did not accept the promotion request")
	}
	deadline := time.Now().Add(wait)
	for {
		var recovering bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil {
			return err
		}
		if !recovering {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: promote: %w (%s)", ErrPromoteTimeout, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(promotePoll):
		}
	}
}

// promotePoll is how often promoteSQL looks whether recovery ended.
const promotePoll = 5 * time.Millisecond

// runningOutOfRecovery reports whether the server runs and has no signal
// file: the server removes them when it leaves recovery.
func (s Server) runningOutOfRecovery(ctx context.Context) (bool, error) {
	running, err := s.Running(ctx)
	if err != nil || !running {
		return false, err
	}
	for _, f := range []string{StandbySignalFile, RecoverySignalFile} {
		if _, err := os.Stat(filepath.Join(s.DataDir, f)); err == nil {
			return false, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
	}
	return true, nil
}

// RemoveStandbySignal removes standby.signal, so the server starts as a
// primary; none there is no error.
func (s Server) RemoveStandbySignal() error {
	err := os.Remove(filepath.Join(s.DataDir, StandbySignalFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("postgres: remove standby signal: %w", err)
	}
	return nil
}

// EnsureStandbySignal creates standby.signal in the data directory, owned
// by Owner, so that the server starts as a standby: a stopped old primary
// cannot come back writable. The file is synced before it returns.
func (s Server) EnsureStandbySignal() error {
	path := filepath.Join(s.DataDir, StandbySignalFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: standby signal: %w", err)
	}
	err = s.chownOpenToOwner(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.DataDir)
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("postgres: standby signal: %w", err)
	}
	return nil
}

// PostmasterPID reads the postmaster's pid from postmaster.pid: 0 when the
// file is absent or unreadable, or names no live process (a stale file
// left by a crash, or a zombie). Like pg_ctl, it cannot tell a live process
// that reused the pid.
func (s Server) PostmasterPID() int {
	b, err := os.ReadFile(filepath.Join(s.DataDir, PostmasterPIDFile))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return 0
	}
	return pid
}

// PostmasterStarted is when the running postmaster started, from the third
// line of postmaster.pid (whole seconds, as PostgreSQL writes it); ok is
// false when no live postmaster is named there or the line is unreadable.
func (s Server) PostmasterStarted() (started time.Time, ok bool) {
	if s.PostmasterPID() == 0 {
		return time.Time{}, false
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, PostmasterPIDFile))
	if err != nil {
		return time.Time{}, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(lines[2]), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// processAlive reports whether pid is a process that is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no /proc: trust kill
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// pgCtl runs pg_ctl, killing it if it outlives timeout by pgCtlSlack. An
// error from a deadline or cancellation wraps ctx's error.
func (s Server) pgCtl(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout+pgCtlSlack)
	defer cancel()
	cmd, err := Command(cctx, s.BinDir, s.Owner, "pg_ctl", args...)
	if err != nil {
		return "", err
	}
	out, err := Run(cmd)
	if err != nil && cctx.Err() != nil {
		err = fmt.Errorf("%w: %w", cctx.Err(), err)
	}
	return out, err
}

// waitSecs is a wait in whole seconds for pg_ctl -t, rounded up, at least 1.
func waitSecs(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// closeConn says goodbye to the server, briefly even when ctx is done.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	conn.Close(cctx)
}

// chownToOwner gives a file we created as root to the server's owner. It
// never follows a symbolic link: the owner can replace entries of its
// data directory, and root must not chown what a planted link names.
func (s Server) chownToOwner(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	_, cred, err := lookupOwner(s.Owner)
	if err != nil {
		return err
	}
	return os.Lchown(path, int(cred.Uid), int(cred.Gid))
}

// chownOpenToOwner is chownToOwner for a file we hold open (fchown: no
// path, no race).
func (s Server) chownOpenToOwner(f *os.File) error {
	if os.Geteuid() != 0 {
		return nil
	}
	_, cred, err := lookupOwner(s.Owner)
	if err != nil {
		return err
	}
	return f.Chown(int(cred.Uid), int(cred.Gid))
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
