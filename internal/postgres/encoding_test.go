package postgres_test

import (
	"context"
	"testing"

	"github.com/pgfm/pgfm/internal/testenv"
)

// Clusters made without a UTF-8 locale are SQL_ASCII, and old estates run
// LATIN1: the agent probes, promotes and re-points standbys of any server
// encoding.
func TestAnyServerEncoding(t *testing.T) {
	for _, enc := range []string{"SQL_ASCII", "LATIN1", "UTF8"} {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 2, Encoding: enc})
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			p, s1, s2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
			var got string
			p.QueryRow(t, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()", &got)
			if got != enc {
				t.Fatalf("server encoding %s, want %s", got, enc)
			}
			// A non-ASCII value in the data and in a setting the probe reads.
			p.Exec(t, "CREATE TABLE t (v text); INSERT INTO t VALUES ('caf'||chr(233))")
			for _, n := range c.Nodes {
				observe(t, n)
			}
			if err := server(p).Stop(ctx, "immediate", ctlTimeout); err != nil {
				t.Fatal(err)
			}
			if err := server(s1).Promote(ctx, s1.ConnString("postgres"), ctlTimeout); err != nil {
				t.Fatalf("promote on %s: %v", enc, err)
			}
			if obs := observe(t, s1); obs.InRecovery {
				t.Fatalf("%s still in recovery after the promotion", s1.Name)
			}
			if _, err := server(s2).Follow(ctx, s2.ConnString("postgres"), s1.Host, s1.Port, "", s2.Name); err != nil {
				t.Fatalf("follow on %s: %v", enc, err)
			}
			s1.Exec(t, "INSERT INTO t VALUES ('after')")
			testenv.WaitFor(t, replTimeout, s2.Name+" follows "+s1.Name, func() (bool, error) { return hasText(s2, "after") })
			var cs string
			if err := s2.TryQueryRow("SELECT coalesce(min(sender_host), '') FROM pg_stat_wal_receiver", &cs); err != nil || cs != s1.Host {
				t.Fatalf("%s streams from %q (%v), want %s", s2.Name, cs, err, s1.Host)
			}
		})
	}
}

func hasText(n *testenv.PGNode, v string) (bool, error) {
	var c int
	if err := n.TryQueryRow("SELECT count(*) FROM t WHERE v = '"+v+"'", &c); err != nil {
		return false, err
	}
	return c == 1, nil
}
