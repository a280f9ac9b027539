package postgres

import (
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
