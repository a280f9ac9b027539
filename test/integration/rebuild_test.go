package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// rebuilt waits until the old primary runs as a streaming standby of the
// new primary, reported as such, and the notifications say how.
func (fc *failoverCluster) rebuilt(t *testing.T, old, np *testenv.Node, how string) {
	t.Helper()
	waitStreaming(t, old, np)
	waitStatus(t, fc.Nodes[3], 60*time.Second, "the old primary reported a standby", func(st efmStatus, _ int) error {
		if n := st.Nodes[old.Host]; n.Type != "Standby" || n.Agent != "UP" || n.DB != "UP" {
			return fmt.Errorf("old primary %+v", n)
		}
		return nil
	})
	testenv.WaitFor(t, 30*time.Second, "the rebuild notification", func() (bool, error) {
		notes, _ := os.ReadFile(fc.noteLog)
		return check(strings.Contains(string(notes), "Failed primary rebuilt as a standby"), "notifications:\n%s", notes)
	})
	out, _, _ := old.CLI(t, "cluster-status", "prod")
	if !strings.Contains(old.Output(), "rebuilt as a standby") || !strings.Contains(old.Output(), "with="+how) {
		t.Fatalf("the old primary's agent did not log a rebuild with %s:\n%s", how, out)
	}
	np.PG.Exec(t, "CREATE TABLE IF NOT EXISTS after_rebuild(i int); INSERT INTO after_rebuild VALUES (7)")
	testenv.WaitFor(t, 30*time.Second, "the rebuilt standby replicates", func() (bool, error) {
		var n int
		if err := old.PG.TryQueryRow("SELECT count(*) FROM after_rebuild", &n); err != nil {
			return false, err
		}
		return check(n == 1, "row not replicated yet")
	})
}

// auto.rewind, EFM's third situation: the primary's node crashes, the
// cluster fails over, and when its agent starts again it finds another
// primary named and rewinds its database into a standby of it, after
// recording the WAL it throws away.
func TestAutoRewindAfterNodeCrash(t *testing.T) {
	fc := newFailoverCluster(t, map[string]string{"auto.rewind": "true", "auto.basebackup": "true"})
	old := fc.Primary()
	old.Kill(t)
	old.PG.Kill(t)
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	old.Start(t)
	fc.rebuilt(t, old, np, "pg_rewind")
	testenv.WaitFor(t, 10*time.Second, "the discarded-WAL report", func() (bool, error) {
		notes, _ := os.ReadFile(fc.noteLog)
		return check(strings.Contains(string(notes), "Rebuild discards WAL"), "notifications:\n%s", notes)
	})
	if !strings.Contains(old.Output(), "throws away this node's WAL after the fork point") {
		t.Fatal("the old primary's agent did not log the WAL it throws away")
	}
	fc.lossReported(t, np, old)
}

// auto.basebackup when pg_rewind cannot (no wal_log_hints, no data
// checksums), EFM's first situation: the primary's postmaster is killed,
// the cluster fails over, and the old primary's agent, unable to rewind,
// copies the new primary with pg_basebackup, keeping its old data
// directory.
func TestAutoBasebackupWhenRewindCannot(t *testing.T) {
	fc := newFailoverClusterConf(t, map[string]string{"auto.rewind": "true", "auto.basebackup": "true"}, []string{"wal_log_hints = off"})
	old := fc.Primary()
	old.PG.Kill(t)
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	fc.rebuilt(t, old, np, "pg_basebackup")
	if !strings.Contains(old.Output(), "pg_rewind cannot rebuild this node; copying the primary with pg_basebackup") ||
		!strings.Contains(old.Output(), "wal_log_hints=on or data checksums") {
		t.Fatal("the old primary's agent did not say why pg_rewind could not rebuild it")
	}
	kept, _ := filepath.Glob(old.PG.DataDir + ".pgfm-replaced-*")
	if len(kept) != 1 {
		t.Fatalf("the old data directory was not kept aside: %v", kept)
	}
	// Without pg_rewind the diverged WAL cannot be measured: only the
	// killed primary's unsent tail may be missing.
	fc.noLostWrites(t, np, old.Host)
}

// lossReported stops the writer and checks that every acknowledged write
// missing on the final primary is counted in the discarded-WAL report:
// with asynchronous replication a killed primary may have acknowledged
// commits no standby received (within max.failover.lag), and the rebuild
// must tell the operator so.
func (fc *failoverCluster) lossReported(t *testing.T, final, old *testenv.Node) {
	t.Helper()
	acked, lost := fc.stopWriter(t, final)
	// The report, as old's agent logged it (the notification script only
	// records subjects).
	reported := 0
	for _, m := range regexp.MustCompile(`throws away this node's WAL after the fork point.* commits=(\d+)`).FindAllStringSubmatch(old.Output(), -1) {
		n, _ := strconv.Atoi(m[1])
		reported += n
	}
	if len(lost) > reported {
		t.Fatalf("%d of %d acknowledged writes missing on the final primary %s (first %+v), but the discarded-WAL report counts %d commits",
			len(lost), len(acked), final.Name, lost[0], reported)
	}
	t.Logf("%d acknowledged writes, %d lost, %d commits reported discarded", len(acked), len(lost), reported)
}
