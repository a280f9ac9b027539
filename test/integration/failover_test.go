package integration

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// failoverCluster is a primary, two standbys and a witness with agents
// running, a fence and a post-promotion script that record their
// arguments, and a client writing throughout.
type failoverCluster struct {
	*testenv.AgentCluster
	writer                     *testenv.Writer
	fenceLog, postLog, noteLog string
	dbFailLog                  string // script.db.failure's arguments, a line a run
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func newFailoverCluster(t *testing.T, props map[string]string) *failoverCluster {
	t.Helper()
	return newFailoverClusterConf(t, props, nil)
}

// newFailoverClusterConf is newFailoverCluster with pgConf lines appended
// to every server's postgresql.conf.
func newFailoverClusterConf(t *testing.T, props map[string]string, pgConf []string) *failoverCluster {
	t.Helper()
	return newFailoverClusterWith(t, props, pgConf, nil)
}

// newFailoverClusterWith is newFailoverClusterConf with nodeProps: extra
// properties for single nodes, by index (0 the primary).
func newFailoverClusterWith(t *testing.T, props map[string]string, pgConf []string, nodeProps map[int]map[string]string) *failoverCluster {
	t.Helper()
	dir := testenv.ScriptDir(t)
	fc := &failoverCluster{fenceLog: filepath.Join(dir, "fence.log"), postLog: filepath.Join(dir, "post.log"),
		noteLog: filepath.Join(dir, "notes.log"), dbFailLog: filepath.Join(dir, "dbfail.log")}
	writeScript(t, filepath.Join(dir, "fence.sh"), `echo "$@" >> `+fc.fenceLog)
	writeScript(t, filepath.Join(dir, "post.sh"), `echo "$@" >> `+fc.postLog)
	writeScript(t, filepath.Join(dir, "notify.sh"), `echo "$1" >> `+fc.noteLog)
	writeScript(t, filepath.Join(dir, "dbfail.sh"), `echo "$@" >> `+fc.dbFailLog)
	all := map[string]string{
		"script.fence":          filepath.Join(dir, "fence.sh") + " %p %f",
		"script.post.promotion": filepath.Join(dir, "post.sh") + " %p %f",
		"script.notification":   filepath.Join(dir, "notify.sh"),
		"script.db.failure":     filepath.Join(dir, "dbfail.sh") + " %h %t",
	}
	for k, v := range props {
		all[k] = v
	}
	fc.AgentCluster = testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 2, Witnesses: 1, Props: all, PGConf: pgConf})
	for i, extra := range nodeProps {
		mine := maps.Clone(all)
		maps.Copy(mine, extra)
		fc.Nodes[i].WriteProperties(t, mine)
	}
	fc.StartAll(t)
	var hosts []string
	for _, n := range fc.PG.Nodes {
		hosts = append(hosts, n.Host)
	}
	fc.writer = testenv.StartWriter(t, fc.PG.Primary(), hosts, fc.PG.Port)
	fc.writer.WaitAcked(t, fc.Primary().Host, 30*time.Second)
	return fc
}

// waitNewPrimary waits until a node other than old is the promoted primary
// as the witness reports it.
func (fc *failoverCluster) waitNewPrimary(t *testing.T, old *testenv.Node, timeout time.Duration) *testenv.Node {
	t.Helper()
	var winner string
	waitStatus(t, fc.Nodes[3], timeout, "a new primary", func(st efmStatus, code int) error {
		if st.Primary == "" || st.Primary == old.Host || st.PrimaryPhase != "promoted" {
			return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
		if n := st.Nodes[st.Primary]; n.Type != "Primary" || n.DB != "UP" {
			return fmt.Errorf("new primary %s reported as %+v", st.Primary, n)
		}
		winner = st.Primary
		return nil
	})
	for _, n := range fc.Nodes {
		if n.Host == winner {
			return n
		}
	}
	t.Fatalf("new primary %s is no node of the cluster", winner)
	return nil
}

// checkAfterFailover asserts what every failover must leave behind.
func (fc *failoverCluster) checkAfterFailover(t *testing.T, old, np *testenv.Node) {
	t.Helper()
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	fc.writer.Stop()
	gap, late := testenv.History(fc.writer.Acked(), old.Host, np.Host)
	t.Logf("write unavailability: %s", gap)
	if len(late) > 0 {
		t.Fatalf("%d writes acknowledged by the old primary %s after the new primary %s took its first: %v", len(late), old.Host, np.Host, late)
	}
	fence, _ := os.ReadFile(fc.fenceLog)
	if want := np.Host + " " + old.Host; strings.TrimSpace(string(fence)) != want {
		t.Fatalf("script.fence ran with %q, want %q once", fence, want)
	}
	testenv.WaitFor(t, 10*time.Second, "notifications with their severity", func() (bool, error) {
		notes, _ := os.ReadFile(fc.noteLog)
		return check(strings.Contains(string(notes), "[SEVERE] pgfm Primary database failure on cluster prod") &&
			strings.Contains(string(notes), "[WARNING] pgfm Failover has completed on cluster prod"), "script.notification got:\n%s", notes)
	})
	testenv.WaitFor(t, 30*time.Second, "post-promotion script", func() (bool, error) {
		post, _ := os.ReadFile(fc.postLog)
		return check(strings.TrimSpace(string(post)) == np.Host+" "+old.Host, "script.post.promotion ran with %q", post)
	})
	// The other standby streams from the new primary, on its timeline.
	var other *testenv.Node
	for _, n := range fc.Nodes[:3] {
		if n != old && n != np {
			other = n
		}
	}
	np.PG.Exec(t, "CREATE TABLE IF NOT EXISTS after_failover(i int); INSERT INTO after_failover VALUES (42)")
	testenv.WaitFor(t, 60*time.Second, "the other standby follows the new primary", func() (bool, error) {
		var sender string
		var n int
		if err := other.PG.TryQueryRow("SELECT coalesce((SELECT sender_host FROM pg_stat_wal_receiver), '')", &sender); err != nil {
			return false, err
		}
		if sender != np.Host {
			return false, fmt.Errorf("standby %s streams from %q", other.Name, sender)
		}
		if err := other.PG.TryQueryRow("SELECT count(*) FROM after_failover", &n); err != nil {
			return false, err
		}
		return check(n == 1, "row not replicated yet")
	})
}

// oldPrimaryNotWritable: the old primary's database, started by hand,
// comes up in recovery (its agent left standby.signal).
func oldPrimaryNotWritable(t *testing.T, old *testenv.Node) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "old primary's database stopped", func() (bool, error) {
		return check(!old.PG.Running(t), "old primary's database still runs")
	})
	if _, err := os.Stat(filepath.Join(old.PG.DataDir, "standby.signal")); err != nil {
		t.Fatalf("the old primary has no standby.signal: %v", err)
	}
	old.PG.Start(t)
	var rec bool
	old.PG.QueryRow(t, "SELECT pg_is_in_recovery()", &rec)
	if !rec {
		t.Fatal("the old primary came back writable")
	}
}

func TestFailoverPostmasterKilled(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	old := fc.Primary()
	old.PG.Kill(t)
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	fc.checkAfterFailover(t, old, np)
	oldPrimaryNotWritable(t, old)
	// The old primary's agent saw its database fail: script.db.failure ran
	// there, once, as the primary's.
	testenv.WaitFor(t, 10*time.Second, "script.db.failure on the old primary", func() (bool, error) {
		b, _ := os.ReadFile(fc.dbFailLog)
		return check(strings.TrimSpace(string(b)) == old.Host+" p", "script.db.failure ran with %q", b)
	})
}

func TestFailoverNodeCrash(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	old := fc.Primary()
	old.Kill(t)
	old.PG.Kill(t)
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	fc.checkAfterFailover(t, old, np)
}

func TestFailoverNodeFrozen(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	old := fc.Primary()
	old.Signal(syscall.SIGSTOP)
	old.PG.Signal(t, syscall.SIGSTOP)
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	// Thawed, the old primary's agent finds its lease gone and fences.
	old.Signal(syscall.SIGCONT)
	old.PG.Signal(t, syscall.SIGCONT)
	fc.checkAfterFailover(t, old, np)
	oldPrimaryNotWritable(t, old)
}

func TestNoFailoverWhenOnlyThePrimaryAgentDies(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	old := fc.Primary()
	old.Kill(t)
	killed := time.Now()
	waitStatus(t, fc.Nodes[3], 30*time.Second, "primary agent DOWN", func(st efmStatus, code int) error {
		if n := st.Nodes[old.Host]; n.Agent != "DOWN" || n.DB != "UP" {
			return fmt.Errorf("primary %+v", n)
		}
		return nil
	})
	// Three node.timeouts later the database still is the only primary.
	for time.Since(killed) < 9*time.Second {
		st, _, err := status(t, fc.Nodes[3])
		if err == nil && (st.Primary != old.Host || st.Epoch != 1) {
			t.Fatalf("failover after only the primary's agent died: %+v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	fc.writer.Stop()
	acked := fc.writer.Acked()
	if last := acked[len(acked)-1]; last.Server != old.Host || last.At.Before(killed) {
		t.Fatalf("writes stopped on the primary after its agent died: last %+v", last)
	}
}

func TestFailingFenceScriptStopsPromotion(t *testing.T) {
	dir := testenv.ScriptDir(t)
	writeScript(t, filepath.Join(dir, "fence.sh"), "echo cannot reach the power switch; exit 7")
	fc := newFailoverCluster(t, map[string]string{"script.fence": filepath.Join(dir, "fence.sh") + " %p %f"})
	old := fc.Primary()
	old.PG.Kill(t)
	st := waitStatus(t, fc.Nodes[3], 60*time.Second, "the failover stopped by the fence script", func(st efmStatus, code int) error {
		if st.PrimaryPhase != "fence-failed" {
			return fmt.Errorf("primary record %s (%s) epoch %d", st.Primary, st.PrimaryPhase, st.Epoch)
		}
		return nil
	})
	if !strings.Contains(strings.Join(st.Messages, " "), "script.fence") {
		t.Fatalf("cluster-status does not say why: %v", st.Messages)
	}
	for _, n := range fc.PG.Standbys() {
		var rec bool
		n.QueryRow(t, "SELECT pg_is_in_recovery()", &rec)
		if !rec {
			t.Fatalf("standby %s was promoted although script.fence failed", n.Name)
		}
	}
	if !strings.Contains(strings.Join(st.Messages, " "), "pgfm promote prod") {
		t.Fatalf("cluster-status does not say the way out: %v", st.Messages)
	}

	// The way out: the operator fixes the fencing and runs promote.
	writeScript(t, filepath.Join(dir, "fence.sh"), `echo "$@" >> `+fc.fenceLog)
	out := cli(t, fc.Nodes[3], "promote", "prod")
	if !strings.Contains(out, "Promotion completed") {
		t.Fatalf("promote after fence-failed printed:\n%s", out)
	}
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	fence, _ := os.ReadFile(fc.fenceLog)
	if !strings.Contains(string(fence), np.Host+" ") {
		t.Fatalf("script.fence did not run for the retry: %q", fence)
	}
}

// TestIdleAndResume: a standby whose database fails goes idle (never a
// candidate) and stays idle after its database is back, until resume.
func TestIdleAndResume(t *testing.T) {
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Witnesses: 1})
	c.StartAll(t)
	standby, witness := c.Nodes[1], c.Nodes[2]
	standby.PG.Stop(t, "fast")
	waitStatus(t, witness, 30*time.Second, "standby idle", func(st efmStatus, code int) error {
		if n := st.Nodes[standby.Host]; n.Type != "Idle" || n.Agent != "IDLE" {
			return fmt.Errorf("standby %+v", n)
		}
		if len(st.FailoverPriority) != 0 {
			return fmt.Errorf("an idle standby is on the priority list: %v", st.FailoverPriority)
		}
		return nil
	})
	_, errOut, code := standby.CLI(t, "resume", c.Name)
	if code == 0 || !strings.Contains(errOut, "cannot resume") {
		t.Fatalf("resume with the database down: exit %d %s", code, errOut)
	}
	standby.PG.Start(t)
	// For several local.periods after the database is back, idle holds.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if st, _, err := status(t, witness); err != nil || st.Nodes[standby.Host].Type != "Idle" {
			t.Fatalf("idle did not hold after the database came back: %+v %v", st.Nodes[standby.Host], err)
		}
	}
	out, errOut, code := standby.CLI(t, "resume", c.Name)
	if code != 0 || !strings.Contains(out, "resumed") {
		t.Fatalf("resume: exit %d %s %s", code, out, errOut)
	}
	waitStatus(t, witness, 30*time.Second, "standby monitored again", func(st efmStatus, code int) error {
		if n := st.Nodes[standby.Host]; n.Type != "Standby" || n.Agent != "UP" || code != 0 {
			return fmt.Errorf("standby %+v exit %d", n, code)
		}
		return nil
	})
}

// TestFailoverResumesAfterTheAgentIsKilled kills the promoting standby's
// agent while its fence script runs: restarted, it resumes from etcd's
// primary record and finishes the failover.
func TestFailoverResumesAfterTheAgentIsKilled(t *testing.T) {
	dir := testenv.ScriptDir(t)
	started := filepath.Join(dir, "fence.started")
	writeScript(t, filepath.Join(dir, "fence.sh"), `echo "$@" >> `+started+`; sleep 2`)
	fc := newFailoverCluster(t, map[string]string{"script.fence": filepath.Join(dir, "fence.sh") + " %p %f"})
	old := fc.Primary()
	old.PG.Kill(t)
	var promoting *testenv.Node
	testenv.WaitFor(t, 60*time.Second, "the fence script to start", func() (bool, error) {
		b, err := os.ReadFile(started)
		if err != nil {
			return false, err
		}
		for _, n := range fc.Nodes {
			if strings.HasPrefix(string(b), n.Host+" ") {
				promoting = n
			}
		}
		return check(promoting != nil, "fence log %q", b)
	})
	promoting.Kill(t)
	promoting.Start(t)
	np := fc.waitNewPrimary(t, old, 90*time.Second)
	if np != promoting {
		t.Fatalf("%s was named, %s finished the failover", promoting.Name, np.Name)
	}
	b, _ := os.ReadFile(started)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Fatalf("the fence script ran %d times, want 2 (once before the kill, once after the restart): %q", n, b)
	}
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	fc.writer.Stop()
	if _, late := testenv.History(fc.writer.Acked(), old.Host, np.Host); len(late) > 0 {
		t.Fatalf("writes acknowledged by the old primary after the new one: %v", late)
	}
}

// TestPrimaryRestartedLocally: with primary.restart.timeout, a killed
// postmaster is restarted on the same node and no failover happens.
func TestPrimaryRestartedLocally(t *testing.T) {
	fc := newFailoverCluster(t, map[string]string{"primary.restart.timeout": "20"})
	old := fc.Primary()
	old.PG.Kill(t)
	killed := time.Now()
	testenv.WaitFor(t, 30*time.Second, "the primary's database restarted", func() (bool, error) {
		return check(old.PG.Running(t), "not running yet")
	})
	fc.writer.WaitAcked(t, old.Host, 30*time.Second)
	testenv.WaitFor(t, 30*time.Second, "writes on the restarted primary", func() (bool, error) {
		acked := fc.writer.Acked()
		last := acked[len(acked)-1]
		return check(last.Server == old.Host && last.At.After(killed), "last write %+v", last)
	})
	st, _, err := status(t, fc.Nodes[3])
	if err != nil || st.Epoch != 1 || st.Primary != old.Host {
		t.Fatalf("a failover happened although the primary was restarted locally: %+v %v", st, err)
	}
	fc.writer.Stop()
	gap, _ := testenv.History(fc.writer.Acked(), old.Host, "")
	t.Logf("write unavailability with a local restart: %s", gap)
}

// TestIsolatedPrimaryFencesItself cuts the primary off from the majority
// by freezing every other agent (their etcd members go silent): the
// primary cannot renew its lease and must stop its database before the
// lease can have expired elsewhere (DESIGN.md §4, invariant 1).
func TestIsolatedPrimaryFencesItself(t *testing.T) {
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Witnesses: 1})
	c.StartAll(t)
	primary, standby, witness := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	standby.Signal(syscall.SIGSTOP)
	witness.Signal(syscall.SIGSTOP)
	cut := time.Now()
	t.Cleanup(func() { standby.Signal(syscall.SIGCONT); witness.Signal(syscall.SIGCONT) })
	testenv.WaitFor(t, 20*time.Second, "the isolated primary stops its database", func() (bool, error) {
		return check(!primary.PG.Running(t), "the primary's database still runs")
	})
	took := time.Since(cut)
	t.Logf("isolated primary fenced %s after the cut (node.timeout 3s)", took)
	if took > 3*time.Second {
		t.Fatalf("fenced after %s: later than node.timeout, when the majority may already have promoted", took)
	}
	if _, err := os.Stat(filepath.Join(primary.PG.DataDir, "standby.signal")); err != nil {
		t.Fatalf("the fenced primary has no standby.signal: %v", err)
	}
	if !strings.Contains(primary.Output(), "fencing the isolated primary") {
		t.Fatalf("the agent does not say why it stopped its database:\n%s", tailOf(primary.Output()))
	}
	// Healed, the majority fails over to the standby; one writable primary.
	standby.Signal(syscall.SIGCONT)
	witness.Signal(syscall.SIGCONT)
	waitStatus(t, witness, 60*time.Second, "the standby promoted", func(st efmStatus, code int) error {
		if st.Primary != standby.Host || st.PrimaryPhase != "promoted" {
			return fmt.Errorf("primary record %s (%s) epoch %d", st.Primary, st.PrimaryPhase, st.Epoch)
		}
		return nil
	})
	if primary.PG.Running(t) {
		t.Fatal("the old primary's database runs again after the failover")
	}
}

// TestHangingNotificationScript: every agent's notification script hangs
// (two minutes; script.timeout 150 s), yet the failover completes well
// within one run of it: notifications are queued, never on the failover's
// path.
func TestHangingNotificationScript(t *testing.T) {
	dir := testenv.ScriptDir(t)
	calls, release := filepath.Join(dir, "calls.log"), filepath.Join(dir, "release")
	writeScript(t, filepath.Join(dir, "hang.sh"), `echo "$1" >> `+calls+`
n=0
while [ ! -e `+release+` ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done`)
	// The scripts end by themselves once the test ends.
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	fc := newFailoverCluster(t, map[string]string{
		"script.notification": filepath.Join(dir, "hang.sh"),
		"script.timeout":      "150",
	})
	old := fc.Primary()
	old.PG.Kill(t)
	killed := time.Now()
	// A failover waiting for one run of the script would not be done by
	// then.
	np := fc.waitNewPrimary(t, old, 45*time.Second)
	t.Logf("%s promoted %s after the kill while notification scripts hang", np.Name, time.Since(killed).Round(time.Millisecond))
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	// Each agent delivers one notification at a time, and each one's first
	// still hangs: at most one call per agent, and at least one.
	b, _ := os.ReadFile(calls)
	if n := strings.Count(string(b), "\n"); n == 0 || n > len(fc.Nodes) {
		t.Fatalf("%d notification script calls from %d agents whose first call hangs:\n%s", n, len(fc.Nodes), b)
	}
}

// TestHungPrimaryStoppedOnceReplaced: the primary's database hangs (every
// postgres process stopped) while its agent runs. The cluster fails over;
// the old agent then stops its database (stop.failed.primary), so when the
// processes wake up the postmaster acts on that stop first and never takes
// a write again.
func TestHungPrimaryStoppedOnceReplaced(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	old := fc.Primary()
	old.PG.Signal(t, syscall.SIGSTOP)
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			old.PG.Signal(t, syscall.SIGCONT)
		}
	})
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	testenv.WaitFor(t, 30*time.Second, "the old agent stops its hung database", func() (bool, error) {
		_, ok := old.LoggedAt("stopping the failed primary's database (stop.failed.primary)")
		return check(ok, "%s logged no stop of its failed database", old.Name)
	})
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)
	old.PG.Signal(t, syscall.SIGCONT)
	thawed = true
	testenv.WaitFor(t, 30*time.Second, "the thawed old primary's database exits", func() (bool, error) {
		return check(!old.PG.Running(t), "it still runs")
	})
	fc.checkAfterFailover(t, old, np)
}
