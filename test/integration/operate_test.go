package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/testenv"
)

// cli runs a pgfm command on n and fails the test unless it exits 0.
func cli(t *testing.T, n *testenv.Node, args ...string) string {
	t.Helper()
	out, errOut, code := n.CLI(t, args...)
	if code != 0 {
		t.Fatalf("pgfm %s exited %d\nstdout:\n%s\nstderr:\n%s\nevents:\n%s", strings.Join(args, " "), code, out, errOut, n.Output())
	}
	return out
}

// waitStreaming waits until standby's database is in recovery and streams
// from primary.
func waitStreaming(t *testing.T, standby, primary *testenv.Node) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, standby.Name+" streams from "+primary.Name, func() (bool, error) {
		var rec bool
		var sender string
		if err := standby.PG.TryQueryRow("SELECT pg_is_in_recovery(), coalesce((SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'), '')", &rec, &sender); err != nil {
			return false, err
		}
		return check(rec && sender == primary.Host, "in recovery %t, streaming from %q", rec, sender)
	})
}

// noLostWrites stops the writer and checks that every acknowledged write
// is on the final primary. With asynchronous replication a primary that
// crashed may have acknowledged writes it had not yet sent: when crashed
// names it, those may be missing, but only a tail of them (WAL is sent in
// order), never a write followed by one of its writes that arrived.
func (fc *failoverCluster) noLostWrites(t *testing.T, final *testenv.Node, crashed string) (lost int) {
	t.Helper()
	acked, missing := fc.stopWriter(t, final)
	if err := lostOnlyUnsentTail(acked, missing, crashed); err != nil {
		t.Fatalf("%d of %d acknowledged writes missing on the final primary %s: %v", len(missing), len(acked), final.Name, err)
	}
	gap, _ := testenv.History(acked, "", "")
	t.Logf("%d acknowledged writes, %d lost (the crashed primary's unsent tail); longest write gap %s", len(acked), len(missing), gap)
	return len(missing)
}

// stopWriter stops the writer once final acknowledged a write and returns
// every acknowledged write and those missing on final.
func (fc *failoverCluster) stopWriter(t *testing.T, final *testenv.Node) (acked, lost []testenv.Write) {
	t.Helper()
	fc.writer.WaitAcked(t, final.Host, 30*time.Second)
	fc.writer.Stop()
	acked = fc.writer.Acked()
	lost, err := testenv.LostWrites(final.PG, acked)
	if err != nil {
		t.Fatal(err)
	}
	return acked, lost
}

// lostOnlyUnsentTail: every lost write was acknowledged by crashed, after
// the last of its writes that survived.
func lostOnlyUnsentTail(acked, lost []testenv.Write, crashed string) error {
	missing := map[int]bool{}
	for _, w := range lost {
		if crashed == "" || w.Server != crashed {
			return fmt.Errorf("write %+v lost", w)
		}
		missing[w.ID] = true
	}
	lastKept := -1
	for _, w := range acked {
		if w.Server == crashed && !missing[w.ID] {
			lastKept = max(lastKept, w.ID)
		}
	}
	for _, w := range lost {
		if w.ID < lastKept {
			return fmt.Errorf("write %+v lost, though write %d that %s acknowledged after it arrived", w, lastKept, crashed)
		}
	}
	return nil
}

// A switchover to a named standby and back (to the first of the priority
// order) with a client writing: no acknowledged write lost, the old
// primary streaming from the new one each time with no rewind, the other
// standby following, the scripts run.
func TestSwitchoverAndBack(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	old, target, other := fc.Nodes[0], fc.Nodes[1], fc.Nodes[2]

	// Refused, with the reason, when the target cannot take over without
	// loss or is no standby; nothing changes.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-switchover", "-candidate", "127.0.0.254"}, "is no member"},
		{[]string{"-switchover", "-candidate", fc.Nodes[3].Host}, "is a witness"},
		{[]string{"-switchover", "-candidate", "not-an-ip"}, "is not an IP address"},
		{[]string{"-switchover", "-candidate", old.Host}, "is the primary already"},
	} {
		_, errOut, code := old.CLI(t, append([]string{"promote", "prod"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("promote %v: exit %d, stderr %q; want a refusal saying %q", c.args, code, errOut, c.want)
		}
	}
	// A standby whose WAL receiver stopped is refused as a target.
	var conninfo string
	other.PG.QueryRow(t, "SHOW primary_conninfo", &conninfo)
	other.PG.Exec(t, "ALTER SYSTEM SET primary_conninfo = ''")
	other.PG.Exec(t, "SELECT pg_reload_conf()")
	testenv.WaitFor(t, 30*time.Second, other.Name+"'s WAL receiver stopped", func() (bool, error) {
		var n int
		if err := other.PG.TryQueryRow("SELECT count(*) FROM pg_stat_wal_receiver", &n); err != nil {
			return false, err
		}
		return check(n == 0, "%d WAL receivers", n)
	})
	// At once: the agent looks at the standby itself, not at its last
	// published status (which may still say streaming).
	if _, errOut, code := old.CLI(t, "promote", "prod", "-switchover", "-candidate", other.Host); code == 0 || !strings.Contains(errOut, "cannot take over without loss: not streaming") {
		t.Fatalf("switchover to a standby not streaming: exit %d, stderr %q; want a refusal", code, errOut)
	}
	other.PG.Exec(t, "ALTER SYSTEM SET primary_conninfo = '"+strings.ReplaceAll(conninfo, "'", "''")+"'")
	other.PG.Exec(t, "SELECT pg_reload_conf()")
	waitStreaming(t, other, old)
	if st, _, err := status(t, fc.Nodes[3]); err != nil || st.Epoch != 1 || st.Primary != old.Host {
		t.Fatalf("a refused switchover changed the cluster: %+v %v", st, err)
	}

	// A target that cannot replay the old primary's last WAL (an operator
	// paused its replay) is never promoted with less: it names the old
	// primary again, which is promoted back with every write, and it
	// follows it. No script runs for either.
	other.PG.Exec(t, "SELECT pg_wal_replay_pause()")
	out, _, code := old.CLI(t, "promote", "prod", "-switchover", "-candidate", other.Host)
	t.Logf("switchover to a standby whose replay is paused:\n%s", out)
	if code == 0 || !strings.Contains(out, "aborted") {
		t.Fatalf("switchover to a standby whose replay is paused: exit %d, printed\n%s\nwant it aborted", code, out)
	}
	waitStatus(t, fc.Nodes[3], 60*time.Second, "the old primary promoted back", func(st efmStatus, _ int) error {
		if st.Epoch != 3 || st.Primary != old.Host || st.Nodes[old.Host].Type != "Primary" {
			return fmt.Errorf("epoch %d, primary %s (%s)", st.Epoch, st.Primary, st.Nodes[old.Host].Type)
		}
		return nil
	})
	other.PG.Exec(t, "SELECT pg_wal_replay_resume()")
	waitStreaming(t, other, old)
	waitStreaming(t, target, old)
	fc.writer.WaitAcked(t, old.Host, 30*time.Second)
	testenv.WaitFor(t, 30*time.Second, "the abort notified", func() (bool, error) {
		notes, _ := os.ReadFile(fc.noteLog)
		return check(strings.Contains(string(notes), "Switchover aborted"), "notifications:\n%s", notes)
	})

	out = cli(t, fc.Nodes[3], "promote", "prod", "-switchover", "-candidate", target.Host)
	t.Logf("switchover:\n%s", out)
	if !strings.Contains(out, "Switchover completed") || !strings.Contains(out, "old primary streaming") {
		t.Fatalf("promote -switchover printed:\n%s", out)
	}
	waitStreaming(t, old, target)
	waitStreaming(t, other, target)
	fc.writer.WaitAcked(t, target.Host, 30*time.Second)

	// Back: set-priority makes the old primary the first of the order.
	cli(t, old, "set-priority", "prod", old.Host, "1")
	st := waitStatus(t, fc.Nodes[3], 30*time.Second, "the priority shown", func(st efmStatus, _ int) error {
		if st.Priorities[old.Host] != 1 || len(st.FailoverPriority) == 0 || st.FailoverPriority[0] != old.Host {
			return fmt.Errorf("priorities %v, order %v", st.Priorities, st.FailoverPriority)
		}
		return nil
	})
	if st.Primary != target.Host {
		t.Fatalf("primary %s, want %s", st.Primary, target.Host)
	}
	out = cli(t, other, "promote", "prod", "--switchover", "-json")
	var res httpapi.PromoteResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("promote -json printed %q: %v", out, err)
	}
	if !res.Done || res.To != old.Host || res.From != target.Host || len(res.Steps) != 4 {
		t.Fatalf("switchover back: %+v", res)
	}
	waitStreaming(t, target, old)
	waitStreaming(t, other, old)
	fc.noLostWrites(t, old, "")

	fence, _ := os.ReadFile(fc.fenceLog)
	if want := target.Host + " " + old.Host + "\n" + old.Host + " " + target.Host + "\n"; string(fence) != want {
		t.Fatalf("script.fence ran with %q, want %q", fence, want)
	}
	testenv.WaitFor(t, 30*time.Second, "script.post.promotion for both", func() (bool, error) {
		post, _ := os.ReadFile(fc.postLog)
		return check(strings.Count(string(post), "\n") == 2, "script.post.promotion ran with %q", post)
	})
}

// With auto.failover=false a dead primary is not replaced until an
// operator runs promote; then the best standby is promoted through the
// fenced path and the other follows it. Then reset-members removes the
// dead node and create-standby rebuilds the other standby from nothing.
func TestManualPromoteResetMembersCreateStandby(t *testing.T) {
	fc := newFailoverCluster(t, map[string]string{"auto.failover": "false"})
	old := fc.Primary()
	old.Kill(t)
	old.PG.Kill(t)
	waitStatus(t, fc.Nodes[3], 30*time.Second, "the primary seen down", func(st efmStatus, _ int) error {
		if n := st.Nodes[old.Host]; n.Agent != "DOWN" || n.DB != "DOWN" {
			return fmt.Errorf("primary %+v", n)
		}
		return nil
	})
	testenv.WaitFor(t, 30*time.Second, "the manual failover notification", func() (bool, error) {
		notes, _ := os.ReadFile(fc.noteLog)
		return check(strings.Contains(string(notes), "Potential manual failover required"), "notifications:\n%s", notes)
	})
	if st, _, err := status(t, fc.Nodes[3]); err != nil || st.Epoch != 1 {
		t.Fatalf("auto.failover=false but the cluster failed over: %+v %v", st, err)
	}
	out := cli(t, fc.Nodes[3], "promote", "prod")
	if !strings.Contains(out, "Promotion completed") {
		t.Fatalf("promote printed:\n%s", out)
	}
	np := fc.waitNewPrimary(t, old, 30*time.Second)
	for _, n := range fc.Nodes[1:3] {
		if n != np {
			waitStreaming(t, n, np)
		}
	}
	fence, _ := os.ReadFile(fc.fenceLog)
	if want := np.Host + " " + old.Host; strings.TrimSpace(string(fence)) != want {
		t.Fatalf("script.fence ran with %q, want %q", fence, want)
	}
	fc.writer.WaitAcked(t, np.Host, 30*time.Second)

	// The operator then removes the dead node and rebuilds the other
	// standby from nothing (one cluster for three operations: make test
	// stays short).
	resetMembers(t, fc, np, old)
	for _, n := range fc.Nodes[1:3] {
		if n != np {
			createStandbyOnEmptyNode(t, fc, np, n, old.Host)
		}
	}
}

// Maintenance mode holds off the failover of a killed primary postmaster;
// the failover happens once it is turned off, to the standby set-priority
// put first.
func TestMaintenanceModeHoldsFailover(t *testing.T) {
	// No primary.restart.timeout: with it, the agent would restart the
	// killed postmaster once the mode ends instead of failing over (and
	// node.Step's table shows that no restart happens while it is on).
	fc := newFailoverCluster(t, nil)
	old, first, second := fc.Nodes[0], fc.Nodes[1], fc.Nodes[2]
	// set-priority decides the winner: without it the lower address,
	// first, would win. The writer stops so that both standbys hold the
	// same WAL when the primary dies.
	fc.writer.Stop()
	cli(t, old, "set-priority", "prod", second.Host, "1")
	cli(t, old, "set-priority", "prod", first.Host, "2")
	out := cli(t, fc.Nodes[2], "maintenance", "prod", "on")
	if !strings.Contains(out, "maintenance mode") {
		t.Fatalf("maintenance on printed %q", out)
	}
	waitStatus(t, fc.Nodes[3], 30*time.Second, "maintenance mode and priorities shown, standbys in sync", func(st efmStatus, code int) error {
		return checkErr(code == 0 && st.Maintenance && st.Priorities[second.Host] == 1 && st.Priorities[first.Host] == 2 &&
			len(st.FailoverPriority) == 2 && st.FailoverPriority[0] == second.Host,
			"maintenance %t, priorities %v, order %v, messages %v", st.Maintenance, st.Priorities, st.FailoverPriority, st.Messages)
	})
	old.PG.Kill(t)
	killed := time.Now()
	waitStatus(t, fc.Nodes[3], 30*time.Second, "the primary's database seen down", func(st efmStatus, _ int) error {
		return checkErr(st.Nodes[old.Host].DB == "DOWN", "primary %+v", st.Nodes[old.Host])
	})
	// Three node.timeouts: a failover would have happened long before.
	for time.Since(killed) < 9*time.Second {
		st, _, err := status(t, fc.Nodes[3])
		if err == nil && (st.Primary != old.Host || st.Epoch != 1) {
			t.Fatalf("failover in maintenance mode: %+v", st)
		}
		if old.PG.Running(t) {
			t.Fatal("the primary's database was restarted in maintenance mode")
		}
		time.Sleep(500 * time.Millisecond)
	}
	cli(t, fc.Nodes[1], "maintenance", "prod", "off")
	np := fc.waitNewPrimary(t, old, 60*time.Second)
	if np != second {
		t.Fatalf("%s was promoted; set-priority named %s first", np.Name, second.Name)
	}
	if st, _, err := status(t, fc.Nodes[3]); err != nil || st.Maintenance {
		t.Fatalf("maintenance still shown after off: %+v %v", st, err)
	}
	waitStreaming(t, first, second)
}

func checkErr(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}
