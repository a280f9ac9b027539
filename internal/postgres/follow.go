package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// latestTimeline makes a standby follow a promotion to a new timeline.
const latestTimeline = "latest"

// Follow re-points the server, a standby or a stopped old primary, at a new
// primary: primary_conninfo gets primaryHost, primaryPort, user and appName
// (user and appName kept when ""; every other keyword, such as sslmode or
// passfile, kept; jdbc.sslmode, s.SSLMode, added when it names no sslmode),
// recovery_target_timeline becomes 'latest', and standby.signal is made to
// exist. No password is written there: the standby's replication
// connection finds its own (~/.pgpass of the server's OS user, or a
// password keyword already in primary_conninfo, which is kept).
//
// When the server accepts connections on connString it goes through ALTER
// SYSTEM and pg_reload_conf(); when it is stopped, or runs but does not
// accept connections yet (a standby short of consistency), through an atomic
// edit of postgresql.auto.conf (and pg_ctl reload when it runs).
//
// restart says the new settings only apply after a restart: PostgreSQL 12,
// which reads primary_conninfo only at start, a running server that is not
// in recovery (an old primary, which must become a standby), or a
// recovery_target_timeline that was not 'latest'. A stopped server needs
// no restart, only a start.
func (s Server) Follow(ctx context.Context, connString, primaryHost string, primaryPort int, user, appName string) (restart bool, err error) {
	if primaryHost == "" {
		return false, errors.New("postgres: follow: no primary host")
	}
	ctx, cancel := context.WithTimeout(ctx, sqlTimeout)
	defer cancel()
	conn, cerr := pgx.Connect(ctx, connString)
	if cerr == nil {
		defer closeConn(ctx, conn)
		restart, err = s.followSQL(ctx, conn, primaryHost, primaryPort, user, appName)
	} else {
		restart, err = s.followFile(ctx, primaryHost, primaryPort, user, appName, cerr)
	}
	if err != nil {
		return false, fmt.Errorf("postgres: follow %s:%d: %w", primaryHost, primaryPort, err)
	}
	if err := s.EnsureStandbySignal(); err != nil {
		return false, fmt.Errorf("postgres: follow %s:%d: %w", primaryHost, primaryPort, err)
	}
	return restart, nil
}

// followSQL rewrites the settings through ALTER SYSTEM.
func (s Server) followSQL(ctx context.Context, conn *pgx.Conn, host string, port int, user, appName string) (bool, error) {
	var (
		inRecovery               bool
		version                  int
		conninfo, targetTimeline string
	)
	err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		current_setting('server_version_num')::int,
		current_setting('primary_conninfo'),
		current_setting('recovery_target_timeline')`).Scan(&inRecovery, &version, &conninfo, &targetTimeline)
	if err != nil {
		return false, err
	}
	if version < minVersion {
		return false, fmt.Errorf("server version %d: pgfm needs PostgreSQL 12 or later", version)
	}
	next, err := followConninfo(conninfo, host, port, user, appName)
	if err == nil {
		next, err = withSSLMode(next, s.SSLMode)
	}
	if err != nil {
		return false, fmt.Errorf("primary_conninfo: %w", err)
	}
	for _, q := range []string{
		"ALTER SYSTEM SET primary_conninfo = " + sqlLiteral(next),
		"ALTER SYSTEM SET recovery_target_timeline = " + sqlLiteral(latestTimeline),
		"SELECT pg_reload_conf()",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return false, err
		}
	}
	return !inRecovery || version < 130000 || targetTimeline != latestTimeline, nil
}

// followFile rewrites postgresql.auto.conf of a server we cannot talk to.
// connErr is why, reported if the server turns out to run.
func (s Server) followFile(ctx context.Context, host string, port int, user, appName string, connErr error) (bool, error) {
	running, err := s.Running(ctx)
	if err != nil {
		return false, fmt.Errorf("%w (after connecting failed: %v)", err, connErr)
	}
	major, err := s.majorVersion()
	if err != nil {
		return false, err
	}
	if major < minVersion/10000 {
		return false, fmt.Errorf("data directory of PostgreSQL %d: pgfm needs PostgreSQL 12 or later", major)
	}
	conninfo, err := s.fileSetting("primary_conninfo")
	if err != nil {
		return false, err
	}
	timeline, err := s.fileSetting("recovery_target_timeline")
	if err != nil {
		return false, err
	}
	next, err := followConninfo(conninfo, host, port, user, appName)
	if err == nil {
		next, err = withSSLMode(next, s.SSLMode)
	}
	if err != nil {
		return false, fmt.Errorf("primary_conninfo: %w", err)
	}
	path := filepath.Join(s.DataDir, AutoConfFile)
	text, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	out := RewriteConf(string(text), map[string]string{
		"primary_conninfo":         next,
		"recovery_target_timeline": latestTimeline,
	})
	if err := s.writeFileAtomic(path, []byte(out)); err != nil {
		return false, err
	}
	if !running {
		return false, nil
	}
	if _, err := s.pgCtl(ctx, reloadTimeout, "reload", "-D", s.DataDir); err != nil {
		return false, err
	}
	// A server that runs but does not take connections is starting up: we
	// cannot ask whether it is in recovery, but standby.signal decides that
	// at start only.
	return major < 13 || (timeline != "" && timeline != latestTimeline), nil
}

// PrimaryConninfo returns the server's primary_conninfo: SHOW over
// connString when the server accepts connections, else what its
// configuration files say (postgresql.auto.conf, then postgresql.conf;
// include directives are not followed). "" when it is not set.
func (s Server) PrimaryConninfo(ctx context.Context, connString string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("postgres: primary_conninfo: %w", err)
		}
		v, ferr := s.fileSetting("primary_conninfo")
		if ferr != nil {
			return "", fmt.Errorf("postgres: primary_conninfo: %w (after connecting failed: %v)", ferr, err)
		}
		return v, nil
	}
	defer closeConn(ctx, conn)
	var v string
	if err := conn.QueryRow(ctx, "SHOW primary_conninfo").Scan(&v); err != nil {
		return "", fmt.Errorf("postgres: primary_conninfo: %w", err)
	}
	return v, nil
}

// fileSetting is a setting's value as the configuration files hold it:
// postgresql.auto.conf wins over postgresql.conf. "" when neither sets it.
func (s Server) fileSetting(name string) (string, error) {
	for _, path := range []string{
		filepath.Join(s.DataDir, AutoConfFile),
		filepath.Join(s.configDir(), "postgresql.conf"),
	} {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if v, ok := ConfValue(string(b), name); ok {
			return v, nil
		}
	}
	return "", nil
}

// majorVersion reads PG_VERSION of the data directory (12, 13, ...).
func (s Server) majorVersion() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.DataDir, "PG_VERSION"))
	if err != nil {
		return 0, fmt.Errorf("not a data directory: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if major, _, ok := strings.Cut(v, "."); ok { // 9.6 and older
		v = major
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("PG_VERSION %q: %w", v, err)
	}
	return n, nil
}

// writeFileAtomic replaces path by a file holding data, keeping the old
// file's mode and owner (else 0600 and Owner): written to a temporary file
// beside it, synced, renamed over it, and the directory synced. The
// temporary file is created exclusively and changed only through its
// handle: the data directory's owner may plant links in it, and root must
// not write or chown through them.
func (s Server) writeFileAtomic(path string, data []byte) error {
	mode := os.FileMode(0o600)
	uid, gid := -1, -1
	if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".pgfm.tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && os.Geteuid() == 0 {
		if uid >= 0 {
			err = f.Chown(uid, gid)
		} else {
			err = s.chownOpenToOwner(f)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// sqlLiteral quotes s as an escape string literal, which means the same
// whatever standard_conforming_strings says.
func sqlLiteral(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`)
	return "E'" + r.Replace(s) + "'"
}
