package postgres_test

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

// requirePassword puts hba lines first in n's pg_hba.conf (the harness
// trusts loopback) and reloads the server.
func requirePassword(t *testing.T, n *testenv.PGNode, lines ...string) {
	t.Helper()
	path := filepath.Join(n.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// WriteFile on the existing file keeps its owner (the server's user).
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"+string(old)), 0); err != nil {
		t.Fatal(err)
	}
	n.Exec(t, "SELECT pg_reload_conf()")
}

// pg_basebackup gets jdbc.sslmode and the password from the Server (in its
// environment, not on its command line), and Follow writes jdbc.sslmode
// into the copy's primary_conninfo.
func TestBasebackupSSLModeAndPassword(t *testing.T) {
	t.Parallel()
	p := testenv.NewPGCluster(t, testenv.PGOptions{}).Primary()
	p.Exec(t, "CREATE ROLE pgfm_repl LOGIN REPLICATION PASSWORD 'repl pw'")
	requirePassword(t, p, "host replication pgfm_repl 127.0.0.0/8 scram-sha-256")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s := postgres.Server{BinDir: p.BinDir, Owner: p.Owner, DataDir: filepath.Join(testenv.TempDir(t), "copy"), SSLMode: "require"}
	backup := func() error {
		_, err := s.Basebackup(ctx, p.Host, p.Port, "pgfm_repl", postgres.BackupOptions{}, ctlTimeout)
		return err
	}

	// The harness's servers have ssl=off: sslmode=require must refuse them.
	if err := backup(); err == nil || !strings.Contains(err.Error(), "SSL") {
		t.Fatalf("pg_basebackup with jdbc.sslmode=require against a server without SSL: %v; want an SSL refusal", err)
	}
	s.SSLMode = "disable"
	if err := backup(); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("pg_basebackup without a password: %v; want a password refusal", err)
	}
	s.Password = postgres.NewPassword("main", "wrong")
	if err := backup(); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("pg_basebackup with a wrong password: %v; want a refusal", err)
	}
	s.Password = postgres.NewPassword("main", "repl pw")
	timed(t, "pg_basebackup with the password", backup)
	if _, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("no copy: %v", err)
	}

	// The copy is stopped: Follow edits postgresql.auto.conf.
	s.SSLMode = "verify-full"
	timed(t, "follow", func() error {
		_, err := s.Follow(ctx, "host=127.0.0.1 port=1 connect_timeout=1", p.Host, p.Port, "pgfm_repl", "copy")
		return err
	})
	auto, err := os.ReadFile(filepath.Join(s.DataDir, postgres.AutoConfFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(auto), "sslmode=''verify-full''") || strings.Contains(string(auto), "repl pw") {
		t.Errorf("primary_conninfo without jdbc.sslmode, or with the password:\n%s", auto)
	}
}

// As root, script.db.password runs as the scripts' user (script.user, else
// db.service.owner), like every other script.
func TestPasswordScriptUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root switches users")
	}
	if _, err := user.Lookup("postgres"); err != nil {
		t.Skip("no postgres user:", err)
	}
	script := filepath.Join(testenv.TempDir(t), "whoami.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nid -un\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ user, want, wantErr string }{
		{user: "postgres", want: "postgres"},
		{user: "root", want: "root"},
		{user: "", want: "root"},
		{user: "pgfm-no-such-user", wantErr: `cannot run ` + script + ` as "pgfm-no-such-user" (script.user, else db.service.owner)`},
	} {
		p := postgres.NewPasswordScript(postgres.PasswordScript{Cluster: "main", Cmdline: script, User: tc.user, Timeout: 10 * time.Second})
		got, err := p.Get(context.Background())
		p.Close()
		if got != tc.want || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("user %q: Get = %q, %v; want %q, %q", tc.user, got, err, tc.want, tc.wantErr)
		}
	}
}
