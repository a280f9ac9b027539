package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/testenv"
)

// efmStatus is cluster-status-json as a script reads it.
type efmStatus struct {
	Nodes map[string]struct {
		Type        string `json:"type"`
		Agent       string `json:"agent"`
		DB          string `json:"db"`
		VIP         string `json:"vip"`
		VIPActive   bool   `json:"vip_active"`
		LSN         string `json:"lsn"`
		LSNReceive  string `json:"lsnReceive"`
		LSNInfo     string `json:"lsnInfo"`
		XLog        string `json:"xlog"`
		XLogReceive string `json:"xlogReceive"`
		XLogInfo    string `json:"xloginfo"`
		SyncState   string `json:"syncState"`
	} `json:"nodes"`
	AllowedNodes          []string       `json:"allowednodes"`
	MembershipCoordinator string         `json:"membershipcoordinator"`
	FailoverPriority      []string       `json:"failoverpriority"`
	MinimumStandbys       int            `json:"minimumstandbys"`
	MissingNodes          []string       `json:"missingnodes"`
	Messages              []string       `json:"messages"`
	Epoch                 uint64         `json:"epoch"`
	Primary               string         `json:"primary"`
	PrimaryPhase          string         `json:"primaryPhase"`
	Maintenance           bool           `json:"maintenance"`
	Priorities            map[string]int `json:"priorities"`
	SynchronousMode       string         `json:"synchronousMode"`
	SynchronousStandbys   []string       `json:"synchronousStandbys"`
	SynchronousQuorum     int            `json:"synchronousQuorum"`
}

// status runs cluster-status-json on n; an answer that is not JSON (the
// agent not ready yet, say) is an error.
func status(t *testing.T, n *testenv.Node) (efmStatus, int, error) {
	t.Helper()
	out, errOut, code := n.CLI(t, "cluster-status-json", n.Cluster)
	var st efmStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, code, fmt.Errorf("cluster-status-json on %s: exit %d, not JSON: %v; stderr: %s", n.Name, code, err, errOut)
	}
	return st, code, nil
}

// waitStatus polls cluster-status-json on n until cond holds.
func waitStatus(t *testing.T, n *testenv.Node, timeout time.Duration, what string, cond func(efmStatus, int) error) efmStatus {
	t.Helper()
	var last efmStatus
	testenv.WaitFor(t, timeout, what, func() (bool, error) {
		st, code, err := status(t, n)
		if err != nil {
			return false, err
		}
		last = st
		if err := cond(st, code); err != nil {
			return false, err
		}
		return true, nil
	})
	return last
}

func nodesFile(t *testing.T, n *testenv.Node) []string {
	t.Helper()
	addrs, err := config.ReadNodes(n.NodesFile())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

// TestClusterLifecycle forms a cluster of a primary, a standby and a
// witness, then exercises membership: stop and restart, rejoin with old
// state, refused joins, allow-node, disallow-node and stop-cluster.
func TestClusterLifecycle(t *testing.T) {
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Witnesses: 1})
	primary, standby, witness := c.Nodes[0], c.Nodes[1], c.Nodes[2]

	// A standby or a witness cannot start a cluster (their .nodes is empty).
	for _, n := range []*testenv.Node{standby, witness} {
		n.Start(t)
		if code := n.Wait(t, 60*time.Second); code != 78 {
			t.Fatalf("%s with an empty .nodes exited %d, want 78 (refused); output:\n%s", n.Name, code, n.Output())
		}
	}
	if out := standby.Output(); !strings.Contains(out, "cannot start a new cluster on a standby") {
		t.Fatalf("standby's refusal does not explain itself:\n%s", out)
	}
	if out := witness.Output(); !strings.Contains(out, "a witness cannot start a new cluster") {
		t.Fatalf("witness's refusal does not explain itself:\n%s", out)
	}
	if err := os.RemoveAll(standby.StateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(witness.StateDir); err != nil {
		t.Fatal(err)
	}

	c.StartAll(t)
	all := []string{primary.Bind(), standby.Bind(), witness.Bind()}
	slices.Sort(all)

	t.Run("forms one cluster", func(t *testing.T) {
		primary.PG.Exec(t, "CREATE TABLE IF NOT EXISTS t(i int); INSERT INTO t VALUES (1)")
		st := waitStatus(t, witness, 30*time.Second, "a healthy cluster", func(st efmStatus, code int) error {
			if code != 0 || len(st.Nodes) != 3 {
				return fmt.Errorf("exit %d, %d nodes: %+v", code, len(st.Nodes), st)
			}
			return nil
		})
		want := map[string][2]string{primary.Host: {"Primary", "UP"}, standby.Host: {"Standby", "UP"}, witness.Host: {"Witness", "N/A"}}
		for host, w := range want {
			n, ok := st.Nodes[host]
			if !ok || n.Type != w[0] || n.DB != w[1] || n.Agent != "UP" {
				t.Fatalf("node %s = %+v, want type %s db %s agent UP", host, n, w[0], w[1])
			}
		}
		p, s := st.Nodes[primary.Host], st.Nodes[standby.Host]
		if p.LSN == "" || p.LSN != p.XLog || s.LSN == "" || s.LSN != s.XLog || s.LSNReceive != s.XLogReceive {
			t.Fatalf("LSNs missing or EFM 4 and 5 names differ: primary %+v standby %+v", p, s)
		}
		pl, err := cluster.ParseLSN(p.LSN)
		if err != nil {
			t.Fatal(err)
		}
		var now string
		primary.PG.QueryRow(t, "SELECT pg_current_wal_lsn()::text", &now)
		nl, _ := cluster.ParseLSN(now)
		if pl == 0 || pl > nl {
			t.Fatalf("reported primary LSN %s is not a position the primary has (now %s)", p.LSN, now)
		}
		if sl, _ := cluster.ParseLSN(s.LSN); sl < pl {
			t.Fatalf("cluster-status exited 0 but the standby replayed %s < primary %s", s.LSN, p.LSN)
		}
		if st.MembershipCoordinator == "" || len(st.AllowedNodes) != 3 {
			t.Fatalf("coordinator %q, allowed %v", st.MembershipCoordinator, st.AllowedNodes)
		}
		if !slices.Equal(st.FailoverPriority, []string{standby.Host}) {
			t.Fatalf("failover priority %v, want [%s]", st.FailoverPriority, standby.Host)
		}
		out, _, code := primary.CLI(t, "cluster-status", c.Name)
		for _, s := range []string{"Agent Type", primary.Host, "Allowed node host list", "Membership coordinator", "Standby priority host list", "WAL Replayed LSN", "in sync with primary"} {
			if !strings.Contains(out, s) {
				t.Fatalf("cluster-status (exit %d) lacks %q:\n%s", code, s, out)
			}
		}
		for _, n := range c.Nodes {
			testenv.WaitFor(t, 10*time.Second, n.Name+"'s .nodes lists every member", func() (bool, error) {
				return check(slices.Equal(nodesFile(t, n), all), "%s: %v, want %v", n.NodesFile(), nodesFile(t, n), all)
			})
		}
	})

	t.Run("a stopped witness is DOWN, then UP after restart", func(t *testing.T) {
		witness.Stop(t)
		start := time.Now()
		waitStatus(t, primary, 3*time.Second+5*time.Second, "witness DOWN", func(st efmStatus, code int) error {
			if st.Nodes[witness.Host].Agent != "DOWN" || code == 0 {
				return fmt.Errorf("witness %+v exit %d", st.Nodes[witness.Host], code)
			}
			if !slices.Contains(st.MissingNodes, witness.Host) {
				return fmt.Errorf("missingnodes %v", st.MissingNodes)
			}
			return nil
		})
		if d := time.Since(start); d > 3*time.Second+2*time.Second {
			t.Fatalf("witness shown DOWN after %s, node.timeout is 3s", d)
		}
		// Restart with stop-cluster disabled, to check the refusal below.
		witness.WriteProperties(t, map[string]string{"enable.stop.cluster": "false"})
		witness.Start(t)
		waitStatus(t, primary, 60*time.Second, "witness UP", func(st efmStatus, code int) error {
			if st.Nodes[witness.Host].Agent != "UP" {
				return fmt.Errorf("witness %+v", st.Nodes[witness.Host])
			}
			return nil
		})
	})

	t.Run("a restarted standby agent rejoins with its old state", func(t *testing.T) {
		standby.Stop(t)
		if _, err := os.Stat(standby.StateDir + "/etcd/member/wal"); err != nil {
			t.Fatalf("standby's consensus data is gone after a stop: %v", err)
		}
		standby.Start(t)
		waitStatus(t, witness, 60*time.Second, "standby UP", func(st efmStatus, code int) error {
			if n := st.Nodes[standby.Host]; n.Agent != "UP" || n.Type != "Standby" || code != 0 {
				return fmt.Errorf("standby %+v exit %d", n, code)
			}
			return nil
		})
		if !strings.Contains(standby.Output(), "restarting as an existing member") {
			t.Fatalf("standby did not restart as the same member:\n%s", tailOf(standby.Output()))
		}
	})

	t.Run("two agents of one cluster on one host are refused", func(t *testing.T) {
		out, errOut, code := standby.CLI(t, "agent", c.Name)
		if code != 78 || !strings.Contains(out+errOut, "already runs on this host") {
			t.Fatalf("second agent: exit %d\n%s%s", code, out, errOut)
		}
	})

	extra := c.AddNode(t, "extra", "", map[string]string{"is.witness": "true"})

	t.Run("a node that was not allowed is refused and told why", func(t *testing.T) {
		extra.Start(t)
		if code := extra.Wait(t, 60*time.Second); code != 78 {
			t.Fatalf("not-allowed node exited %d, want 78 (refused):\n%s", code, extra.Output())
		}
		for _, s := range []string{"not on the allowed node host list", "pgfm allow-node " + c.Name + " " + extra.Host} {
			if !strings.Contains(extra.Output(), s) {
				t.Fatalf("refusal lacks %q:\n%s", s, extra.Output())
			}
		}
	})

	t.Run("an agent of another cluster name is refused", func(t *testing.T) {
		other := c.AddNode(t, "other", "other", map[string]string{"is.witness": "true"})
		other.Start(t)
		if code := other.Wait(t, 60*time.Second); code != 78 {
			t.Fatalf("other-cluster node exited %d, want 78 (refused):\n%s", code, other.Output())
		}
		if !strings.Contains(other.Output(), `is an agent of cluster "prod", not "other"`) {
			t.Fatalf("refusal does not name the clusters:\n%s", other.Output())
		}
	})

	t.Run("allow-node admits, disallow-node removes", func(t *testing.T) {
		out, errOut, code := standby.CLI(t, "allow-node", c.Name, extra.Host)
		if code != 0 || !strings.Contains(out, "allowed") {
			t.Fatalf("allow-node: %d %s %s", code, out, errOut)
		}
		extra.Start(t)
		extra.WaitReady(t)
		waitStatus(t, primary, 30*time.Second, "4 nodes", func(st efmStatus, code int) error {
			if n := st.Nodes[extra.Host]; n.Agent != "UP" || n.Type != "Witness" {
				return fmt.Errorf("extra %+v", n)
			}
			return nil
		})
		out, errOut, code = primary.CLI(t, "disallow-node", c.Name, extra.Host)
		if code != 0 {
			t.Fatalf("disallow-node: %d %s %s", code, out, errOut)
		}
		if code := extra.Wait(t, 30*time.Second); code != 3 {
			t.Fatalf("removed agent exited %d, want 3:\n%s", code, tailOf(extra.Output()))
		}
		if !strings.Contains(extra.Output(), "was removed from cluster") {
			t.Fatalf("removed agent does not say why:\n%s", tailOf(extra.Output()))
		}
		st := waitStatus(t, primary, 30*time.Second, "extra gone", func(st efmStatus, code int) error {
			if _, ok := st.Nodes[extra.Host]; ok || slices.Contains(st.AllowedNodes, extra.Host) {
				return fmt.Errorf("extra still listed: %+v", st)
			}
			return nil
		})
		if len(st.Nodes) != 3 {
			t.Fatalf("nodes after disallow: %+v", st.Nodes)
		}
		testenv.WaitFor(t, 10*time.Second, "primary's .nodes without the removed node", func() (bool, error) {
			return check(slices.Equal(nodesFile(t, primary), all), "%v", nodesFile(t, primary))
		})
		// Bad input gets a clear answer.
		_, errOut, code = primary.CLI(t, "disallow-node", c.Name, "not-an-ip")
		if code == 0 || !strings.Contains(errOut, "is not an IP address") {
			t.Fatalf("disallow-node of junk: %d %s", code, errOut)
		}
	})

	t.Run("stop-cluster stops every agent, databases keep running", func(t *testing.T) {
		_, errOut, code := witness.CLI(t, "stop-cluster", c.Name)
		if code == 0 || !strings.Contains(errOut, "enable.stop.cluster=false") {
			t.Fatalf("stop-cluster with enable.stop.cluster=false: exit %d %s", code, errOut)
		}
		out, errOut, code := primary.CLI(t, "stop-cluster", c.Name)
		if code != 0 {
			t.Fatalf("stop-cluster: %d %s %s", code, out, errOut)
		}
		for _, n := range []*testenv.Node{primary, standby, witness} {
			if code := n.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("%s exited %d after stop-cluster:\n%s", n.Name, code, tailOf(n.Output()))
			}
		}
		for _, pg := range c.PG.Nodes {
			if !pg.Running(t) {
				t.Fatalf("database %s stopped with the agents", pg.Name)
			}
		}
		_, errOut, code = primary.CLI(t, "cluster-status", c.Name)
		if code == 0 || !strings.Contains(errOut, "is not running") || !strings.Contains(errOut, "systemctl start pgfm@prod") {
			t.Fatalf("cluster-status without an agent: %d %s", code, errOut)
		}
	})

	t.Run("agents restarted after stop-cluster form the cluster again", func(t *testing.T) {
		// Alone, an agent waits for a majority; a signal still stops it cleanly.
		witness.Start(t)
		testenv.WaitFor(t, 30*time.Second, "witness waiting for a majority", func() (bool, error) {
			return check(strings.Contains(witness.Output(), "restarting as an existing member"), "no restart line yet")
		})
		witness.Stop(t)

		for _, n := range []*testenv.Node{primary, standby, witness} {
			n.Start(t)
		}
		waitStatus(t, standby, 90*time.Second, "the cluster healthy again", func(st efmStatus, code int) error {
			if code != 0 || len(st.Nodes) != 3 {
				return fmt.Errorf("exit %d: %+v", code, st)
			}
			return nil
		})
		for _, n := range []*testenv.Node{primary, standby, witness} {
			if !n.Running() {
				t.Fatalf("%s exited after the restart (an old stop-cluster request must not stop it again):\n%s", n.Name, tailOf(n.Output()))
			}
		}
	})
}

func tailOf(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// check adapts a condition to WaitFor: an error only when it fails.
func check(ok bool, format string, args ...any) (bool, error) {
	if ok {
		return true, nil
	}
	return false, fmt.Errorf(format, args...)
}
