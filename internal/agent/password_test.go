package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/secret"
	"github.com/pgfm/pgfm/internal/testenv"
)

// The agent's probe of a real PostgreSQL 15 whose users need a password
// (scram-sha-256 and md5 in pg_hba.conf): from a properties file through
// config.Load to the connection, with db.password.encrypted and with
// script.db.password; a refused password names the property to fix.
func TestPasswordRealPostgres(t *testing.T) {
	t.Parallel()
	p := testenv.NewPGCluster(t, testenv.PGOptions{}).Primary()
	p.Exec(t, "CREATE ROLE pgfm_scram LOGIN PASSWORD 'scram pw'")
	p.Exec(t, "SET password_encryption = 'md5'; CREATE ROLE pgfm_md5 LOGIN PASSWORD 'md5 pw'")
	hba := filepath.Join(p.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	rules := "host all pgfm_scram 127.0.0.0/8 scram-sha-256\nhost all pgfm_md5 127.0.0.0/8 md5\n"
	if err := os.WriteFile(hba, []byte(rules+string(old)), 0); err != nil { // keeps the owner
		t.Fatal(err)
	}
	p.Exec(t, "SELECT pg_reload_conf()")

	const cluster = "main"
	enc := func(pw string) string {
		v, err := secret.Encrypt(cluster, pw)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	dir := testenv.TempDir(t) // 0755: as root, the script runs as db.service.owner (postgres)
	pwFile := filepath.Join(dir, "current")
	script := filepath.Join(dir, "pw.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat "+pwFile+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	setScript := func(out string) {
		if err := os.WriteFile(pwFile, []byte(out+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// agent loads cluster main with these lines and prepares what the
	// probe needs (prepare's executor, without the rest of prepare).
	agent := func(lines ...string) *Agent {
		t.Helper()
		cdir := t.TempDir()
		props := fmt.Sprintf("db.port=%d\ndb.database=postgres\nbind.address=%s:7800\ndb.data.dir=%s\n%s\n",
			p.Port, p.Host, p.DataDir, strings.Join(lines, "\n"))
		if err := os.WriteFile(filepath.Join(cdir, cluster+".properties"), []byte(props), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(cdir, cluster)
		if err != nil {
			t.Fatal(err)
		}
		a := New(cfg, slog.New(slog.DiscardHandler))
		a.exec = &executor{db: a.server()}
		t.Cleanup(a.dbPassword().Close)
		return a
	}
	observe := func(a *Agent) (up bool, errText string) {
		obs := a.observe(context.Background(), p.Host, p.Port, 10*time.Second)
		return obs.Up, obs.Error
	}

	for _, tc := range []struct {
		name   string
		script string // what the script prints, when it is used
		lines  []string
		want   []string // "" = connects; else substrings of the error
	}{
		{name: "scram, db.password.encrypted", lines: []string{"db.user=pgfm_scram", "db.password.encrypted=" + enc("scram pw")}},
		{name: "md5, db.password.encrypted", lines: []string{"db.user=pgfm_md5", "db.password.encrypted=" + enc("md5 pw")}},
		{name: "scram, script.db.password", script: "scram pw", lines: []string{"db.user=pgfm_scram", "script.db.password=" + script}},
		{name: "md5, script.db.password.encrypted", script: enc("md5 pw"), lines: []string{"db.user=pgfm_md5",
			"script.db.password=" + script, "script.db.password.encrypted=true"}},
		{name: "wrong db.password.encrypted", lines: []string{"db.user=pgfm_scram", "db.password.encrypted=" + enc("not it")},
			want: []string{"password authentication failed", "SQLSTATE 28P01",
				"the password comes from db.password.encrypted: run `pgfm encrypt main` with db.user's password and replace its value"}},
		{name: "wrong script.db.password", script: "not it", lines: []string{"db.user=pgfm_scram", "script.db.password=" + script},
			want: []string{"password authentication failed", "the password comes from script.db.password: check what it prints"}},
		{name: "no password", lines: []string{"db.user=pgfm_scram"},
			want: []string{"no password is configured: set db.password.encrypted (run `pgfm encrypt main`) or script.db.password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setScript(tc.script)
			up, errText := observe(agent(tc.lines...))
			if len(tc.want) == 0 {
				if !up {
					t.Fatalf("not connected: %s", errText)
				}
				return
			}
			if up {
				t.Fatal("connected with a wrong password")
			}
			t.Log(errText)
			for _, w := range tc.want {
				if !strings.Contains(errText, w) {
					t.Errorf("error %q lacks %q", errText, w)
				}
			}
			if strings.Contains(errText, "not it") || strings.Contains(errText, "scram pw") {
				t.Errorf("error %q shows a password", errText)
			}
		})
	}

	// A password changed in the password manager: the refusal makes the
	// agent run the script again (after script.db.password.retry).
	t.Run("script runs again after a refusal", func(t *testing.T) {
		setScript("old pw")
		a := agent("db.user=pgfm_scram", "script.db.password="+script, "script.db.password.retry=0.2")
		if up, _ := observe(a); up {
			t.Fatal("connected with the old password")
		}
		setScript("scram pw")
		testenv.WaitFor(t, 10*time.Second, "the agent connects with the script's new password", func() (bool, error) {
			up, errText := observe(a)
			if !up {
				return false, fmt.Errorf("%s", errText)
			}
			return true, nil
		})
	})
}
