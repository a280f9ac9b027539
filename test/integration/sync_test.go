package integration

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/testenv"
)

// waitSyncSet waits until the recorded synchronous set is quorum of
// members (hosts, in the order the cluster sorts them).
func waitSyncSet(t *testing.T, fc *failoverCluster, quorum int, members ...*testenv.Node) efmStatus {
	t.Helper()
	var want []string
	for _, m := range members {
		want = append(want, m.Host)
	}
	slices.Sort(want)
	return waitStatus(t, fc.Nodes[3], 60*time.Second, fmt.Sprintf("synchronous set ANY %d %v", quorum, want), func(st efmStatus, _ int) error {
		got := slices.Clone(st.SynchronousStandbys)
		slices.Sort(got)
		if st.SynchronousQuorum != quorum || !slices.Equal(got, want) {
			return fmt.Errorf("synchronous set ANY %d %v (mode %s)", st.SynchronousQuorum, got, st.SynchronousMode)
		}
		return nil
	})
}

// syncStandbyNames is the primary's synchronous_standby_names.
func syncStandbyNames(t *testing.T, p *testenv.Node) string {
	t.Helper()
	var v string
	p.PG.QueryRow(t, "SELECT current_setting('synchronous_standby_names')", &v)
	return v
}

// ackedSince counts the writes acknowledged after at.
func ackedSince(fc *failoverCluster, at time.Time) int {
	n := 0
	for _, w := range fc.writer.Acked() {
		if w.At.After(at) {
			n++
		}
	}
	return n
}

// waitWritesFlow waits until the client has had a write acknowledged after
// at.
func waitWritesFlow(t *testing.T, fc *failoverCluster, at time.Time, what string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, what, func() (bool, error) {
		return check(ackedSince(fc, at) > 0, "no write acknowledged since %s", at.Format(time.StampMilli))
	})
}

// noneLost stops the writer and checks every acknowledged write is on the
// final primary: synchronous mode loses nothing, not even a tail.
func (fc *failoverCluster) noneLost(t *testing.T, final *testenv.Node) {
	t.Helper()
	acked, lost := fc.stopWriter(t, final)
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged writes missing on the final primary %s in synchronous mode: %v", len(lost), len(acked), final.Name, lost)
	}
	gap, _ := testenv.History(acked, "", "")
	t.Logf("%d acknowledged writes, none lost; longest write gap %s", len(acked), gap)
}

// synchronousOn is the properties of synchronous mode, with standbys whose
// database failed resuming by themselves.
func synchronousOn(mode string, count int) map[string]string {
	return map[string]string{
		"synchronous.mode": mode, "synchronous.node.count": strconv.Itoa(count),
		"auto.resume.failure.period": "1",
	}
}

// synchronous.mode=on: the primary waits for both standbys (ANY 1); one
// standby's database dies and writes go on with the other, it comes back
// and is waited for again; then the primary's postmaster is killed and
// the failover loses no acknowledged write, while a client writes every
// 10 ms throughout.
func TestSynchronousModeOn(t *testing.T) {
	fc := newFailoverCluster(t, synchronousOn("on", 1))
	p, s1, s2 := fc.Nodes[0], fc.Nodes[1], fc.Nodes[2]
	st := waitSyncSet(t, fc, 1, s1, s2)
	if st.SynchronousMode != "on" || st.Nodes[s1.Host].SyncState != "quorum" {
		t.Errorf("cluster-status-json: mode %q, %s sync state %q; want on, quorum", st.SynchronousMode, s1.Host, st.Nodes[s1.Host].SyncState)
	}
	a, b := s1, s2
	if b.Host < a.Host {
		a, b = b, a
	}
	// The names are those the standbys' WAL receivers give (the harness
	// names them after the node).
	if got, want := syncStandbyNames(t, p), fmt.Sprintf(`ANY 1 ("%s", "%s")`, a.Name, b.Name); got != want {
		t.Errorf("synchronous_standby_names = %q, want %q", got, want)
	}
	// Each agent reads the recorded set every local.period.
	testenv.WaitFor(t, 10*time.Second, "GET /sync 200 on a synchronous standby", func() (bool, error) {
		code := getCode(t, s1, "/sync")
		return check(code == 200, "GET /sync on %s: %d", s1.Name, code)
	})

	// A synchronous standby fails: it leaves the set, writes go on.
	s1.PG.Kill(t)
	killed := time.Now()
	waitSyncSet(t, fc, 1, s2)
	waitWritesFlow(t, fc, killed, "writes acknowledged with one synchronous standby down")
	s1.PG.Start(t)
	waitSyncSet(t, fc, 1, s1, s2)

	// The primary's postmaster dies: a synchronous standby takes over with
	// every acknowledged write.
	p.PG.Kill(t)
	np := fc.waitNewPrimary(t, p, 60*time.Second)
	fc.checkAfterFailover(t, p, np)
	fc.noneLost(t, np)
	// The new primary waits for the standby that follows it.
	for _, n := range []*testenv.Node{s1, s2} {
		if n != np {
			waitSyncSet(t, fc, 1, n)
		}
	}
}

// getCode GETs path on n's admin port and returns the status code.
func getCode(t *testing.T, n *testenv.Node, path string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s%s", net.JoinHostPort(n.Host, strconv.Itoa(n.AdminPort)), path))
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, n.Name, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// synchronous.mode=strict with synchronous.node.count=2: a synchronous
// standby fails and writes wait (they are never acknowledged with fewer
// standbys); it comes back and they go on.
func TestSynchronousModeStrictWaits(t *testing.T) {
	fc := newFailoverCluster(t, synchronousOn("strict", 2))
	p, s1, s2 := fc.Nodes[0], fc.Nodes[1], fc.Nodes[2]
	waitSyncSet(t, fc, 2, s1, s2)

	s1.PG.Kill(t)
	testenv.WaitFor(t, 30*time.Second, "a commit waiting for synchronous replication", func() (bool, error) {
		var n int
		if err := p.PG.TryQueryRow("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'", &n); err != nil {
			return false, err
		}
		return check(n > 0, "no backend waits on SyncRep")
	})
	blocked, errs := time.Now(), fc.writer.Errors()
	// Two more writes time out, still waiting.
	testenv.WaitFor(t, 30*time.Second, "writes timing out", func() (bool, error) {
		return check(fc.writer.Errors() >= errs+2, "%d writes failed since the wait began", fc.writer.Errors()-errs)
	})
	if n := ackedSince(fc, blocked); n > 0 {
		t.Fatalf("%d writes acknowledged while a synchronous standby was down in strict mode", n)
	}
	waitSyncSet(t, fc, 2, s1, s2) // never narrowed below the count

	s1.PG.Start(t)
	restarted := time.Now()
	waitWritesFlow(t, fc, restarted, "writes acknowledged once the standby is back")
	fc.noneLost(t, p)
}

// No standby outside the recorded set is ever promoted, even with the most
// WAL and the first priority. node2 (promotable=false) stays out of the
// set {node1}; node1's WAL receiver is stopped, so commits wait while
// node2, asynchronous, receives their WAL. Under maintenance mode the
// primary's postmaster is killed, node2 gets set-priority 1 (promotable
// now), and once maintenance ends the failover goes to node1, which has
// every acknowledged write.
func TestSynchronousModeNeverPromotesOutsideTheSet(t *testing.T) {
	fc := newFailoverClusterWith(t, synchronousOn("on", 1), nil, map[int]map[string]string{2: {"promotable": "false"}})
	p, s1, s2 := fc.Nodes[0], fc.Nodes[1], fc.Nodes[2]
	waitSyncSet(t, fc, 1, s1)
	if code := getCode(t, s2, "/sync"); code != 503 {
		t.Errorf("GET /sync on %s, an asynchronous standby: %d, want 503", s2.Name, code)
	}

	var pid int
	s1.PG.QueryRow(t, "SELECT pid FROM pg_stat_wal_receiver", &pid)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	lsn := func(n *testenv.Node) (cluster.LSN, error) {
		var l string
		if err := n.PG.TryQueryRow("SELECT pg_last_wal_receive_lsn()::text", &l); err != nil {
			return 0, err
		}
		return cluster.ParseLSN(l)
	}
	testenv.WaitFor(t, 30*time.Second, s2.Name+" receives more WAL than "+s1.Name, func() (bool, error) {
		l1, err := lsn(s1)
		if err != nil {
			return false, err
		}
		l2, err := lsn(s2)
		if err != nil {
			return false, err
		}
		return check(l2 > l1, "%s at %s, %s at %s", s1.Name, l1, s2.Name, l2)
	})

	cli(t, p, "maintenance", "prod", "on")
	p.PG.Kill(t)
	waitStatus(t, fc.Nodes[3], 30*time.Second, "the primary's database down", func(st efmStatus, _ int) error {
		if st.Nodes[p.Host].DB == "UP" {
			return fmt.Errorf("primary database %s", st.Nodes[p.Host].DB)
		}
		return nil
	})
	cli(t, s1, "set-priority", "prod", s2.Host, "1")
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	cli(t, s1, "maintenance", "prod", "off")
	np := fc.waitNewPrimary(t, p, 60*time.Second)
	if np != s1 {
		t.Fatalf("%s was promoted; want %s, the only synchronous standby (%s, outside the set, had more WAL)", np.Name, s1.Name, s2.Name)
	}
	fc.noneLost(t, s1)
}
