package agent

import (
	"cmp"
	"context"
	"time"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/secret"
)

// The database password of every connection the agent makes (EFM's
// db.password.encrypted, script.db.password*): the agent's own through
// pgx, pg_rewind's and pg_basebackup's. It lives in the postgres.Server
// the executor holds (pg_basebackup needs it there), made once by
// prepare through server(); connString puts it into the connection
// strings, which therefore are secrets and are never logged.

// newPassword is the password source cfg asks for.
func (a *Agent) newPassword() *postgres.Password {
	db := a.cfg.DB
	if db.PasswordScript == "" {
		return postgres.NewPassword(a.cfg.Cluster, db.Password)
	}
	var decrypt func(string) (string, error)
	if db.PasswordScriptEncrypted {
		cluster := a.cfg.Cluster
		decrypt = func(v string) (string, error) { return secret.Decrypt(cluster, v) }
	}
	return postgres.NewPasswordScript(postgres.PasswordScript{
		Cluster: a.cfg.Cluster, Cmdline: db.PasswordScript, Retry: db.PasswordRetry,
		Timeout: a.cfg.ScriptTimeout, Decrypt: decrypt, User: cmp.Or(a.cfg.ScriptUser, db.ServiceOwner), Log: a.log,
	})
}

// dbPassword is the password source made by prepare; nil before it and
// with the flow tests' fake database (no password).
func (a *Agent) dbPassword() *postgres.Password {
	if a.exec == nil {
		return nil
	}
	s, _ := a.exec.db.(postgres.Server)
	return s.Password
}

// fetchPassword runs script.db.password once at start, so that the first
// probe of the database has the password (EFM runs it at agent start). A
// failure is logged by the password source and retried; the agent goes on
// (a database that refuses it is then reported as such).
func (a *Agent) fetchPassword(ctx context.Context) {
	if a.cfg.DB.PasswordScript == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ScriptTimeout+time.Second)
	defer cancel()
	_, _ = a.dbPassword().Get(ctx)
}

// connString is how the agent reaches the database at host:port: db.user,
// db.database, jdbc.sslmode and the password. It holds the password: never
// log it, and give it only to pgx or to Rewind (which moves the password
// into pg_rewind's environment).
func (a *Agent) connString(ctx context.Context, host string, port int, timeout time.Duration) string {
	db := a.cfg.DB
	pw, _ := a.dbPassword().Get(ctx) // without one, the refusal says what is missing
	return postgres.WithPassword(postgres.ConnString(host, port, db.User, db.Database, db.SSLMode, timeout), pw)
}

// connFailed tells the password source about a failed connection: an
// authentication failure makes script.db.password run again. It returns
// err with the property to fix added when it is one.
func (a *Agent) connFailed(err error) error {
	if err == nil {
		return nil
	}
	pw := a.dbPassword()
	if !pw.Failed(err) {
		return err
	}
	return pw.Explain(err)
}
