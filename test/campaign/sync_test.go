package campaign

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// syncRun is one fault on a cluster in synchronous.mode=on.
type syncRun struct {
	name, fault string
	acked, lost int
	gap         time.Duration
	failed      string
}

// TestSynchronousNoLoss fails the primary of a cluster in
// synchronous.mode=on again and again, each fault on a fresh cluster with a
// client writing every 10 ms: its postmaster killed, its node crashed
// (agent and postmaster killed), its node frozen (SIGSTOP, thawed once a
// standby took over). Every acknowledged write must be on the new primary.
func TestSynchronousNoLoss(t *testing.T) {
	n := runs(t)
	var rows []syncRun
	for i := range n {
		for _, fault := range []string{"postmaster-kill", "node-crash", "node-freeze"} {
			r := syncRun{name: fmt.Sprintf("run%02d", i+1), fault: fault}
			t.Run(r.name+"-"+fault, func(t *testing.T) {
				syncFault(t, &r)
				if t.Failed() && r.failed == "" {
					r.failed = "failed"
				}
			})
			rows = append(rows, r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "synchronous.mode=on: acknowledged writes lost per fault\n| run | fault | acknowledged | lost | longest write gap |\n|---|---|---|---|---|\n")
	lost := 0
	for _, r := range rows {
		if r.failed != "" {
			fmt.Fprintf(&b, "| %s | %s | %s |  |  |\n", r.name, r.fault, r.failed)
			continue
		}
		lost += r.lost
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.2f s |\n", r.name, r.fault, r.acked, r.lost, r.gap.Seconds())
	}
	fmt.Fprintf(&b, "%d acknowledged writes lost in %d faults\n", lost, len(rows))
	t.Log(b.String())
	fmt.Print(b.String())
}

// syncFault forms a cluster in synchronous mode, waits until both
// standbys are synchronous, injects the fault and counts the lost writes.
func syncFault(t *testing.T, r *syncRun) {
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 2, Witnesses: 1, Props: map[string]string{"synchronous.mode": "on"}})
	c.StartAll(t)
	old, witness := c.Primary(), c.Nodes[3]
	status := func() (syncStatus, error) {
		out, errOut, code := witness.CLI(t, "cluster-status-json", witness.Cluster)
		var st syncStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return st, fmt.Errorf("cluster-status-json: exit %d, %v; %s", code, err, errOut)
		}
		return st, nil
	}
	testenv.WaitFor(t, 60*time.Second, "both standbys synchronous", func() (bool, error) {
		st, err := status()
		if err != nil {
			return false, err
		}
		if st.SynchronousQuorum != 1 || len(st.SynchronousStandbys) != 2 {
			return false, fmt.Errorf("synchronous set ANY %d %v", st.SynchronousQuorum, st.SynchronousStandbys)
		}
		return true, nil
	})
	var hosts []string
	for _, n := range c.PG.Nodes {
		hosts = append(hosts, n.Host)
	}
	w := testenv.StartWriter(t, c.PG.Primary(), hosts, c.PG.Port)
	w.WaitAcked(t, old.Host, 30*time.Second)
	switch r.fault {
	case "postmaster-kill":
		old.PG.Kill(t)
	case "node-crash":
		old.Kill(t)
		old.PG.Kill(t)
	case "node-freeze":
		old.Signal(syscall.SIGSTOP)
		old.PG.Signal(t, syscall.SIGSTOP)
		t.Cleanup(func() { old.Signal(syscall.SIGCONT) })
	}
	var np *testenv.Node
	testenv.WaitFor(t, 60*time.Second, "a new primary", func() (bool, error) {
		st, err := status()
		if err != nil {
			return false, err
		}
		for _, n := range c.Nodes[1:3] {
			if st.Primary == n.Host && st.PrimaryPhase == "promoted" {
				np = n
				return true, nil
			}
		}
		return false, fmt.Errorf("primary record %s (%s)", st.Primary, st.PrimaryPhase)
	})
	w.WaitAcked(t, np.Host, 30*time.Second)
	if r.fault == "node-freeze" {
		old.Signal(syscall.SIGCONT)
		old.PG.Signal(t, syscall.SIGCONT)
	}
	w.Stop()
	acked := w.Acked()
	lost, err := testenv.LostWrites(np.PG, acked)
	if err != nil {
		t.Fatal(err)
	}
	r.acked, r.lost = len(acked), len(lost)
	r.gap, _ = testenv.History(acked, "", "")
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged writes missing on the new primary %s: the first %+v", len(lost), len(acked), np.Name, lost[0])
	}
}

// syncStatus is the part of cluster-status-json this campaign reads.
type syncStatus struct {
	Primary             string   `json:"primary"`
	PrimaryPhase        string   `json:"primaryPhase"`
	SynchronousStandbys []string `json:"synchronousStandbys"`
	SynchronousQuorum   int      `json:"synchronousQuorum"`
}
