package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/cluster"
)

// The steps that rebuild an old primary as a standby of the new one
// (auto.rewind, auto.basebackup): pg_rewind, and pg_basebackup when it
// cannot; and the record of the WAL a rewind throws away.

// Checkpoint runs CHECKPOINT on the server at connString. pg_rewind reads
// the source's timeline from its control file, which a promoted server
// updates only at its first checkpoint.
func Checkpoint(ctx context.Context, connString string) error {
	ctx, cancel := context.WithTimeout(ctx, sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("postgres: checkpoint: %w", err)
	}
	defer closeConn(ctx, conn)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("postgres: checkpoint: %w", err)
	}
	return nil
}

// Checkpoint runs CHECKPOINT on the server at connString.
func (s Server) Checkpoint(ctx context.Context, connString string) error {
	return Checkpoint(ctx, connString)
}

// CanRewind says why pg_rewind cannot work on this data directory: it
// needs wal_log_hints=on or data checksums; nil when it can.
func (c ControlData) CanRewind() error {
	if c.WalLogHints || c.Checksums {
		return nil
	}
	return errors.New("pg_rewind needs wal_log_hints=on or data checksums, and this data directory has neither: set wal_log_hints=on (a restart) on every node, or set auto.basebackup=true to copy the primary instead")
}

// FinishCrashRecovery brings a data directory that was not shut down
// cleanly to a clean shutdown, running the server once in single-user mode
// (no connections), as pg_rewind needs and as its --dry-run does not do
// itself. standby.signal is set aside meanwhile: single-user mode refuses
// it. A cleanly stopped directory is left alone.
func (s Server) FinishCrashRecovery(ctx context.Context, timeout time.Duration) error {
	cd, err := s.ControlData(ctx)
	if err != nil {
		return err
	}
	if cd.State == "shut down" || cd.State == "shut down in recovery" {
		return nil
	}
	defer s.setSignalAside()()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The checkpoint that ends recovery must not remove the WAL pg_rewind
	// reads back to the last checkpoint before the fork (wal_keep_size
	// keeps what exists; it adds nothing); no archiving meanwhile.
	cmd, err := Command(cctx, s.BinDir, s.Owner, "postgres", "--single", "-F", "-D", s.configDir(),
		"-c", "wal_keep_size=1000000", "-c", "archive_mode=off", "template1")
	if err != nil {
		return err
	}
	if _, err := Run(cmd); err != nil {
		return fmt.Errorf("postgres: crash recovery in single-user mode: %w", err)
	}
	return nil
}

// setSignalAside removes standby.signal and returns what puts it back.
func (s Server) setSignalAside() (restore func()) {
	signal := filepath.Join(s.DataDir, StandbySignalFile)
	if err := os.Remove(signal); err != nil {
		return func() {}
	}
	return func() { _ = s.EnsureStandbySignal() }
}

// nodeConfigFiles are the configuration files that belong to this node
// when they live in the data directory: pg_rewind and pg_basebackup would
// bring the source's instead.
var nodeConfigFiles = []string{"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf"}

// savedConfig is the node's configuration files, read before a rewind or
// a base backup.
type savedConfig map[string][]byte

func (s Server) saveConfig(dir string) savedConfig {
	saved := savedConfig{}
	for _, f := range nodeConfigFiles {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			saved[f] = b
		}
	}
	return saved
}

// restore writes the saved files back into the data directory.
func (s Server) restoreConfig(saved savedConfig) error {
	for f, b := range saved {
		if err := s.writeFileAtomic(filepath.Join(s.DataDir, f), b); err != nil {
			return fmt.Errorf("postgres: restore %s: %w", f, err)
		}
	}
	return nil
}

// Rewind is what pg_rewind said.
type Rewind struct {
	// Needed: the data directory diverged from the source and must be
	// rewound; false when it is behind the fork point already.
	Needed bool
	// ForkLSN and ForkTimeline: "servers diverged at WAL location X on
	// timeline N".
	ForkLSN      cluster.LSN
	ForkTimeline uint32
	Output       string
}

var divergedRE = regexp.MustCompile(`diverged at WAL location ([0-9A-Fa-f]+/[0-9A-Fa-f]+) on timeline (\d+)`)

// ParseRewind reads pg_rewind's output.
func ParseRewind(out string) (Rewind, error) {
	r := Rewind{Output: out, Needed: !strings.Contains(out, "no rewind required")}
	m := divergedRE.FindStringSubmatch(out)
	if m == nil {
		if r.Needed {
			return r, fmt.Errorf("postgres: pg_rewind said neither where the servers diverged nor that no rewind is needed: %s", out)
		}
		return r, nil
	}
	l, err := cluster.ParseLSN(m[1])
	if err != nil {
		return r, fmt.Errorf("postgres: pg_rewind's divergence point %q: %w", m[1], err)
	}
	// Timelines start at 1 and are 32 bits; fmt.Sscan turned a number
	// past that into timeline 0 without an error.
	tl, err := strconv.ParseUint(m[2], 10, 32)
	if err != nil || tl == 0 {
		return r, fmt.Errorf("postgres: pg_rewind's divergence timeline %q is not a timeline", m[2])
	}
	r.ForkLSN, r.ForkTimeline = l, uint32(tl)
	return r, nil
}

// Rewind runs pg_rewind against the source server (a libpq conninfo; a
// password in it is passed in the environment, not on the command line),
// only to see what it would do when dryRun. The server must be stopped;
// one that was not stopped cleanly is recovered first. standby.signal is
// set aside while pg_rewind runs and put back after, and the node's own
// configuration files are put back over the source's that pg_rewind
// copies (Follow then writes the standby settings).
func (s Server) Rewind(ctx context.Context, source string, dryRun bool, timeout time.Duration) (r Rewind, err error) {
	if err := s.FinishCrashRecovery(ctx, timeout); err != nil {
		return Rewind{}, err
	}
	defer s.setSignalAside()()
	if !dryRun {
		saved := s.saveConfig(s.DataDir)
		defer func() {
			if rerr := s.restoreConfig(saved); rerr != nil && err == nil {
				err = rerr
			}
		}()
	}
	// A password goes into the environment, not onto the command line,
	// where every user of the host could read it.
	source, password := splitPassword(source)
	args := []string{"--target-pgdata=" + s.DataDir, "--source-server=" + source}
	if dryRun {
		args = append(args, "--dry-run")
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := Command(cctx, s.BinDir, s.Owner, "pg_rewind", args...)
	if err != nil {
		return Rewind{}, err
	}
	cmd.Env = append(append(cmd.Environ(), "LC_ALL=C"), passwordEnv(password)...)
	out, err := Run(cmd)
	if err != nil {
		return Rewind{Output: out}, fmt.Errorf("postgres: %w", err)
	}
	return ParseRewind(out)
}

// Discarded is the WAL of the old timeline after the fork point: written
// by the old primary, never received by the new one.
type Discarded struct {
	From, To cluster.LSN // the fork point and the start of the last record read
	Records  int
	Commits  int // transaction commits among them: acknowledged writes, possibly
}

var (
	walLSNRE    = regexp.MustCompile(`lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+)`)
	walCommitRE = regexp.MustCompile(`desc: COMMIT`)
)

// ParseWaldump counts the records and commits pg_waldump printed.
func ParseWaldump(out string, from cluster.LSN) Discarded {
	d := Discarded{From: from, To: from}
	for _, line := range strings.Split(out, "\n") {
		m := walLSNRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		l, err := cluster.ParseLSN(m[1])
		if err != nil || l < from {
			continue
		}
		d.Records++
		d.To = max(d.To, l)
		if walCommitRE.MatchString(line) {
			d.Commits++
		}
	}
	return d
}

// DiscardedWAL reads the local WAL of timeline tl from the fork point on
// with pg_waldump. pg_waldump ends with an error at the end of the WAL;
// what it printed before counts.
func (s Server) DiscardedWAL(ctx context.Context, fork cluster.LSN, tl uint32, timeout time.Duration) (Discarded, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := Command(cctx, s.BinDir, s.Owner, "pg_waldump", "--path="+filepath.Join(s.DataDir, "pg_wal"),
		"--start="+fork.String(), fmt.Sprintf("--timeline=%d", tl))
	if err != nil {
		return Discarded{From: fork}, err
	}
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	out, runErr := Run(cmd)
	d := ParseWaldump(out, fork)
	if runErr != nil && d.Records == 0 && !strings.Contains(out, "error in WAL record") {
		return d, fmt.Errorf("postgres: %w", runErr)
	}
	return d, nil
}

// BackupOptions are pg_basebackup's optional parts (create-standby).
type BackupOptions struct {
	Slot   string // create this physical slot on the source and stream through it
	WalDir string // put pg_wal there (--waldir)
}

// Basebackup replaces the data directory with a copy of the server at
// host:port. An existing directory (and WAL directory) is kept beside it,
// renamed (returned), so nothing the operator may still need is deleted;
// one that is missing or empty (never initialised) is simply filled. The
// node's configuration files are put back over the source's. The copy is
// a standby of that server once Follow has written its settings. It
// connects with s.SSLMode and s.Password (see sourceEnv).
func (s Server) Basebackup(ctx context.Context, host string, port int, user string, opts BackupOptions, timeout time.Duration) (kept string, err error) {
	stamp := time.Now().UTC().Format("20060102T150405")
	kept, err = setAside(s.DataDir, stamp)
	if err != nil {
		return "", fmt.Errorf("postgres: pg_basebackup: keep the old data directory: %w", err)
	}
	keptWAL := ""
	if opts.WalDir != "" {
		if keptWAL, err = setAside(opts.WalDir, stamp); err != nil {
			return kept, fmt.Errorf("postgres: pg_basebackup: keep the old WAL directory: %w", err)
		}
	}
	restore := func(cause error) (string, error) {
		undo := func(dir, old string) bool {
			if old == "" {
				return os.RemoveAll(dir) == nil
			}
			return os.RemoveAll(dir) == nil && os.Rename(old, dir) == nil
		}
		okData := undo(s.DataDir, kept)
		okWAL := opts.WalDir == "" || undo(opts.WalDir, keptWAL)
		if okData && okWAL {
			return "", cause
		}
		return kept, fmt.Errorf("%w; the old data directory is at %s", cause, kept)
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return restore(fmt.Errorf("postgres: pg_basebackup: create %s: %w", s.DataDir, err))
	}
	if err := s.chownToOwner(s.DataDir); err != nil {
		return restore(fmt.Errorf("postgres: pg_basebackup: %w", err))
	}
	args := []string{"--pgdata=" + s.DataDir, "--host=" + host, fmt.Sprintf("--port=%d", port),
		"--wal-method=stream", "--checkpoint=fast", "--no-password"}
	if user != "" {
		args = append(args, "--username="+user)
	}
	if opts.Slot != "" {
		args = append(args, "--slot="+opts.Slot, "--create-slot")
	}
	if opts.WalDir != "" {
		args = append(args, "--waldir="+opts.WalDir)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := Command(cctx, s.BinDir, s.Owner, "pg_basebackup", args...)
	if err != nil {
		return restore(err)
	}
	cmd.Env = append(cmd.Environ(), s.sourceEnv(cctx)...)
	if _, err := Run(cmd); err != nil {
		return restore(fmt.Errorf("postgres: %w", err))
	}
	if kept != "" {
		if err := s.restoreConfig(s.saveConfig(kept)); err != nil {
			return kept, err
		}
	}
	return kept, nil
}

// sourceEnv is how a program of this server connects to a primary given
// by host and port arguments: jdbc.sslmode and the password, in libpq's
// environment variables (not on the command line, which ps shows). Without
// a password from Password, PGPASSWORD is left as the agent has it.
func (s Server) sourceEnv(ctx context.Context) []string {
	var env []string
	if s.SSLMode != "" {
		env = append(env, "PGSSLMODE="+s.SSLMode)
	}
	pw, _ := s.Password.Get(ctx) // none: pg_basebackup says the server wants one
	return append(env, passwordEnv(pw)...)
}

// setAside renames dir to dir.pgfm-replaced-STAMP unless it is missing or
// empty (then it is removed, if empty); it returns the new name, or "".
func setAside(dir, stamp string) (string, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	case len(entries) == 0:
		return "", os.Remove(dir)
	}
	kept := strings.TrimRight(dir, "/") + ".pgfm-replaced-" + stamp
	return kept, os.Rename(dir, kept)
}

// SetStandbySetting writes one setting into postgresql.auto.conf of a
// stopped server (primary_slot_name after create-standby -slot).
func (s Server) SetStandbySetting(name, value string) error {
	path := filepath.Join(s.DataDir, AutoConfFile)
	text, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return s.writeFileAtomic(path, []byte(RewriteConf(string(text), map[string]string{name: value})))
}

// DropSlot drops the physical replication slot name on the server at
// connString if it exists and is not in use (create-standby -slot).
func DropSlot(ctx context.Context, connString, name string) error {
	ctx, cancel := context.WithTimeout(ctx, sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("postgres: drop slot %s: %w", name, err)
	}
	defer closeConn(ctx, conn)
	var active bool
	err = conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("postgres: drop slot %s: %w", name, err)
	}
	if active {
		return fmt.Errorf("postgres: replication slot %s is in use by another standby: choose another -slot name", name)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name); err != nil {
		return fmt.Errorf("postgres: drop slot %s: %w", name, err)
	}
	return nil
}
