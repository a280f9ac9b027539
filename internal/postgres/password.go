package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfm/pgfm/internal/hook"
)

// Password is where the agent's database password comes from: nowhere
// (libpq's own ~/.pgpass and PGPASSWORD then apply), a fixed one
// (db.password.encrypted, decrypted by config.Load), or the standard
// output of script.db.password (EFM 5.4), run at the first Get and again
// after an authentication failure or a failed run, never more often than
// every Retry. Its methods are safe for concurrent use, and on a nil
// *Password (no password).
//
// The value is never logged; errors name the property to fix, not the
// password.
type Password struct {
	cluster string
	fixed   string
	script  string // command line (hook.Split syntax); "" = fixed
	retry   time.Duration
	timeout time.Duration
	decrypt func(string) (string, error) // script.db.password.encrypted; nil = clear text
	user    string                       // OS user the script runs as when the agent is root
	log     *slog.Logger
	now     func() time.Time
	base    context.Context // runs end with it (Close)
	cancel  context.CancelFunc

	mu      sync.Mutex
	value   string
	have    bool          // value came from a successful run
	stale   bool          // the database refused value: run again
	lastRun time.Time     // start of the last run
	lastErr error         // why the last run gave no password
	running chan struct{} // closed when the run in flight ends; nil when none
}

// NewPassword is a fixed password (db.password.encrypted, decrypted);
// "" means none. cluster names the fix in errors (`pgfm encrypt CLUSTER`).
func NewPassword(cluster, password string) *Password {
	return &Password{cluster: cluster, fixed: password}
}

// PasswordScript configures script.db.password.
type PasswordScript struct {
	Cluster string
	Cmdline string        // script.db.password
	Retry   time.Duration // script.db.password.retry: least time between two runs (0: 10s)
	Timeout time.Duration // a run is killed after this (0: hook.DefaultTimeout)
	// Decrypt opens the script's output when script.db.password.encrypted
	// is true (secret.Decrypt with the cluster name); nil: it prints the
	// password itself.
	Decrypt func(string) (string, error)
	// User runs the script when the agent is root (script.user, else
	// db.service.owner, as for the other scripts); "" or root: the agent's
	// own user.
	User string
	Log  *slog.Logger // runs and failures, never the password; nil: discard
}

// NewPasswordScript is a password that script.db.password prints. Nothing
// runs until the first Get.
func NewPasswordScript(s PasswordScript) *Password {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Password{
		cluster: s.Cluster, script: s.Cmdline, retry: cmp.Or(s.Retry, 10*time.Second),
		timeout: cmp.Or(s.Timeout, hook.DefaultTimeout), decrypt: s.Decrypt, user: s.User, log: log,
		now: time.Now, base: base, cancel: cancel,
	}
}

// Close kills a script run in flight; later runs fail at once.
func (p *Password) Close() {
	if p != nil && p.cancel != nil {
		p.cancel()
	}
}

// Get returns the password to connect with ("" for none). With a script it
// starts a run when one is due: none succeeded yet, or the database refused
// the password (Failed), and Retry has passed since the last run. While a
// run is in flight Get returns the previous password at once; without one
// it waits for the run, or for ctx. The error says why there is no
// password (the script failed, or has not answered yet); the caller may
// still connect without one.
func (p *Password) Get(ctx context.Context) (string, error) {
	if p == nil {
		return "", nil
	}
	if p.script == "" {
		return p.fixed, nil
	}
	p.mu.Lock()
	due := (!p.have || p.stale) && (p.lastRun.IsZero() || p.now().Sub(p.lastRun) >= p.retry)
	if due && p.running == nil {
		p.running = make(chan struct{})
		p.lastRun = p.now()
		go p.run(p.running)
	}
	wait := p.running
	if p.have || wait == nil {
		defer p.mu.Unlock()
		return p.current()
	}
	p.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current()
}

// current is the value and the reason it is missing; p.mu is held.
func (p *Password) current() (string, error) {
	if p.have {
		return p.value, nil
	}
	if p.lastErr != nil {
		return "", fmt.Errorf("script.db.password gave no password: %w (tried again every script.db.password.retry, %s)",
			p.lastErr, p.retry)
	}
	return "", errors.New("script.db.password has not printed the password yet")
}

// run runs the script once and records what it gave.
func (p *Password) run(done chan struct{}) {
	v, err := p.fetch()
	p.mu.Lock()
	if err == nil {
		p.value, p.have, p.stale, p.lastErr = v, true, false, nil
	} else {
		p.lastErr = err
	}
	p.running = nil
	p.mu.Unlock()
	close(done)
	if err != nil {
		p.log.Warn("script.db.password gave no password; the agent tries again", "err", err, "retry", p.retry)
	} else {
		p.log.Info("database password read from script.db.password")
	}
}

// maxPasswordOutput bounds what the script may print: a password, not a
// document.
const maxPasswordOutput = 4096

// fetch runs the script, as p.user when the agent is root, in a process
// group of its own that is killed at the timeout, with stdin /dev/null, and returns its standard output as the
// password: trailing line ends removed, one line only, decrypted when
// asked. Standard error, bounded, only goes into errors: the script must
// not print the password there.
func (p *Password) fetch() (string, error) {
	args, err := hook.Split(p.script)
	if err != nil || len(args) == 0 {
		return "", fmt.Errorf("command line %q: %v", p.script, err)
	}
	ctx, cancel := context.WithTimeout(p.base, p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxPasswordOutput+1, 1024
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = time.Second
	if p.user != "" && p.user != "root" && os.Geteuid() == 0 {
		u, cred, err := lookupOwner(p.user)
		if err != nil {
			return "", fmt.Errorf("cannot run %s as %q (script.user, else db.service.owner): %w", args[0], p.user, err)
		}
		cmd.SysProcAttr.Credential = cred
		cmd.Env = ownerEnv(u)
		cmd.Dir = "/"
		if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
			cmd.Dir = u.HomeDir
		}
	}
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left in its group goes too
	}
	why := strings.TrimSpace(stderr.String())
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return "", fmt.Errorf("%s did not finish within %s (script.timeout): killed", args[0], p.timeout)
	case err != nil && why != "":
		return "", fmt.Errorf("%s: %v: %s", args[0], err, why)
	case err != nil:
		return "", fmt.Errorf("%s: %v", args[0], err)
	}
	out := strings.TrimRight(stdout.String(), "\r\n")
	switch {
	case len(stdout.b) > maxPasswordOutput:
		return "", fmt.Errorf("%s printed more than %d bytes; it must print only the password", args[0], maxPasswordOutput)
	case out == "":
		return "", fmt.Errorf("%s exited 0 but printed nothing; it must print the password on its standard output", args[0])
	case strings.ContainsAny(out, "\r\n"):
		return "", fmt.Errorf("%s printed several lines; it must print only the password", args[0])
	case strings.ContainsRune(out, 0):
		return "", fmt.Errorf("%s printed a NUL byte, which no password holds", args[0])
	}
	if p.decrypt != nil {
		v, err := p.decrypt(out)
		if err != nil {
			return "", fmt.Errorf("%s printed no value of `pgfm encrypt %s` (script.db.password.encrypted=true): %w", args[0], p.cluster, err)
		}
		out = v
	}
	return out, nil
}

// limitedBuffer keeps the first max bytes written to it and swallows the
// rest, so that a script cannot fill the agent's memory.
type limitedBuffer struct {
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(bytes.ToValidUTF8(l.b, []byte("?"))) }

// Failed tells the password that a connection failed with err. An
// authentication failure makes a script's password stale, so the next Get
// runs the script again (once Retry has passed): the password may have
// changed. It reports whether err is one.
func (p *Password) Failed(err error) bool {
	if !IsAuthError(err) {
		return false
	}
	if p != nil && p.script != "" {
		p.mu.Lock()
		p.stale = true
		p.mu.Unlock()
	}
	return true
}

// IsAuthError reports whether err is the server refusing the login:
// SQLSTATE 28P01 (wrong password) or 28000 (no pg_hba.conf entry, or the
// role may not log in).
func IsAuthError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

// Explain adds to an authentication failure which property gives the
// password and how to fix it; other errors are returned as they are.
func (p *Password) Explain(err error) error {
	if !IsAuthError(err) {
		return err
	}
	cluster := "CLUSTER"
	if p != nil && p.cluster != "" {
		cluster = p.cluster
	}
	var fix string
	switch {
	case p == nil || (p.script == "" && p.fixed == ""):
		fix = fmt.Sprintf("no password is configured: set db.password.encrypted (run `pgfm encrypt %s`) or script.db.password, "+
			"or give the agent's OS user a ~/.pgpass entry", cluster)
	case p.script == "":
		fix = fmt.Sprintf("the password comes from db.password.encrypted: run `pgfm encrypt %s` with db.user's password and "+
			"replace its value, then restart the agent", cluster)
	default:
		fix = "the password comes from script.db.password: check what it prints (only the password"
		if p.decrypt != nil {
			fix += fmt.Sprintf(", as a value of `pgfm encrypt %s`, since script.db.password.encrypted=true", cluster)
		}
		fix += "); it runs again after such a failure, at most every script.db.password.retry"
		p.mu.Lock()
		if p.lastErr != nil {
			fix += fmt.Sprintf("; its last run failed: %v", p.lastErr)
		}
		p.mu.Unlock()
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "28000" {
		fix += "; or pg_hba.conf has no line for this host, user and database"
	}
	return fmt.Errorf("%w (%s)", err, fix)
}

// passwordEnv is the environment entry that gives a PostgreSQL program
// the password ("" gives none): the environment of a process is readable
// only by its user and root, unlike its command line.
func passwordEnv(password string) []string {
	if password == "" {
		return nil
	}
	return []string{"PGPASSWORD=" + password}
}
