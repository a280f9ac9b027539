package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestConnString(t *testing.T) {
	for _, tc := range []struct {
		name           string
		host           string
		port           int
		user, db, ssl  string
		timeout        time.Duration
		want           string
		wantTimeoutSec time.Duration
	}{
		{name: "plain", host: "127.0.0.1", port: 5432, user: "postgres", db: "postgres", ssl: "disable", timeout: 3 * time.Second,
			want: `host='127.0.0.1' port='5432' user='postgres' dbname='postgres' sslmode='disable' connect_timeout='3' client_encoding='UTF8'`, wantTimeoutSec: 3 * time.Second},
		{name: "ipv6", host: "::1", port: 6543, user: "u", db: "d", ssl: "require", timeout: 1500 * time.Millisecond,
			want: `host='::1' port='6543' user='u' dbname='d' sslmode='require' connect_timeout='2' client_encoding='UTF8'`, wantTimeoutSec: 2 * time.Second},
		{name: "quotes", host: "/tmp/a b", port: 1, user: `o'neil`, db: `we\ird db`,
			want: `host='/tmp/a b' port='1' user='o\'neil' dbname='we\\ird db' client_encoding='UTF8'`},
		{name: "empty", want: `client_encoding='UTF8'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ConnString(tc.host, tc.port, tc.user, tc.db, tc.ssl, tc.timeout)
			if got != tc.want {
				t.Fatalf("ConnString = %s\nwant          %s", got, tc.want)
			}
			if tc.host == "" {
				return
			}
			// pgx must read back exactly what we meant.
			cfg, err := pgconn.ParseConfig(got)
			if err != nil {
				t.Fatalf("pgconn.ParseConfig(%s): %v", got, err)
			}
			if cfg.Host != tc.host || int(cfg.Port) != tc.port || cfg.User != tc.user || cfg.Database != tc.db {
				t.Fatalf("parsed back host=%q port=%d user=%q db=%q", cfg.Host, cfg.Port, cfg.User, cfg.Database)
			}
			if cfg.ConnectTimeout != tc.wantTimeoutSec {
				t.Fatalf("parsed connect timeout %v, want %v", cfg.ConnectTimeout, tc.wantTimeoutSec)
			}
		})
	}
}

func TestWithPassword(t *testing.T) {
	base := ConnString("127.0.0.1", 5432, "app", "db", "require", time.Second)
	for _, pw := range []string{"s3cret", `it's a \ "pass" word`, " lead and trail ", "ünïcode"} {
		cs := WithPassword(base, pw)
		cfg, err := pgconn.ParseConfig(cs)
		if err != nil {
			t.Fatalf("pgconn.ParseConfig: %v", err) // no string in the message: it holds the password
		}
		if cfg.Password != pw || cfg.User != "app" || cfg.Database != "db" {
			t.Errorf("password %q parsed back as %q (user %q, db %q)", pw, cfg.Password, cfg.User, cfg.Database)
		}
		rest, got := splitPassword(cs)
		if got != pw || strings.Contains(rest, "password") {
			t.Errorf("splitPassword gave %q and kept %q", got, rest)
		}
		if v, _, _ := ParseConninfo(rest); v["sslmode"] != "require" || v["host"] != "127.0.0.1" {
			t.Errorf("splitPassword lost keywords: %v", v)
		}
	}
	if WithPassword(base, "") != base {
		t.Error("an empty password changed the string")
	}
	if rest, pw := splitPassword(base); rest != base || pw != "" {
		t.Errorf("splitPassword without a password = %q, %q", rest, pw)
	}
	if rest, pw := splitPassword("host='unterminated"); rest != "host='unterminated" || pw != "" {
		t.Errorf("splitPassword of a broken string = %q, %q", rest, pw)
	}
}

// jdbc.sslmode reaches the standby's primary_conninfo unless the user
// chose an sslmode there.
func TestWithSSLMode(t *testing.T) {
	for _, tc := range []struct{ conninfo, sslmode, want string }{
		{"host='b' port='2'", "require", "host='b' port='2' sslmode='require'"},
		{"host='b' port='2'", "verify-full", "host='b' port='2' sslmode='verify-full'"},
		{"host='b' sslmode='verify-ca' port='2'", "require", "host='b' sslmode='verify-ca' port='2'"},
		{"host='b' sslmode=disable", "verify-full", "host='b' sslmode=disable"},
		{"host='b'", "disable", "host='b'"},
		{"host='b'", "", "host='b'"},
		{"", "require", "sslmode='require'"},
	} {
		got, err := withSSLMode(tc.conninfo, tc.sslmode)
		if err != nil || got != tc.want {
			t.Errorf("withSSLMode(%q, %q) = %q, %v; want %q", tc.conninfo, tc.sslmode, got, err, tc.want)
		}
	}
	if _, err := withSSLMode("host='x", "require"); err == nil {
		t.Error("a broken conninfo: want an error")
	}
	// Follow's two steps together: re-pointed, and sslmode added once.
	next, err := followConninfo("user=repl application_name=n1", "10.0.0.2", 5432, "", "")
	if err == nil {
		next, err = withSSLMode(next, "require")
	}
	want := "user='repl' application_name='n1' host='10.0.0.2' port='5432' sslmode='require'"
	if err != nil || next != want {
		t.Errorf("follow conninfo = %q, %v; want %q", next, err, want)
	}
}
