package netns

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// nodeTimeout is the harness's node.timeout: the documented bound for an
// isolated primary to stop its database and release the virtual IP.
const nodeTimeout = 3 * time.Second

func newCluster(t *testing.T, standbys int, ipv6 bool) *testenv.NetCluster {
	t.Helper()
	return newClusterWith(t, standbys, ipv6, nil)
}

// newClusterWith is newCluster with extra properties on every node.
func newClusterWith(t *testing.T, standbys int, ipv6 bool, props map[string]string) *testenv.NetCluster {
	t.Helper()
	c := testenv.NewNetCluster(t, testenv.NetOptions{Standbys: standbys, Witnesses: 1, IPv6Only: ipv6, Props: props})
	c.StartAll(t)
	waitVIPOn(t, c, c.Primary(), 30*time.Second)
	return c
}

// waitVIPOn waits until n, and n only, carries the virtual IP.
func waitVIPOn(t *testing.T, c *testenv.NetCluster, n *testenv.NetNode, timeout time.Duration) {
	t.Helper()
	testenv.WaitFor(t, timeout, "the virtual IP on "+n.Name+" only", func() (bool, error) {
		h := c.VIPHolders(t)
		if len(h) == 1 && h[0] == n {
			return true, nil
		}
		return false, fmt.Errorf("held by %v", names(h))
	})
}

func names(ns []*testenv.NetNode) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// holdNoFailover checks for d that observer reports no failover (epoch 1,
// the first primary) and that every write goes to that primary.
func holdNoFailover(t *testing.T, c *testenv.NetCluster, observer *testenv.NetNode, d time.Duration) {
	t.Helper()
	p := c.Primary()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		st, _, err := observer.Status(t)
		if err != nil {
			continue // the observer may be the node cut off, answering slowly
		}
		if st.Epoch > 1 || (st.Primary != "" && st.Primary != p.Host) {
			t.Fatalf("a failover happened: primary %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
	}
}

// waitAgent waits until observer shows n's agent in state agent ("UP",
// "DOWN") or, for "DOWN", n missing.
func waitAgent(t *testing.T, observer, n *testenv.NetNode, agent string, timeout time.Duration) {
	t.Helper()
	observer.WaitStatus(t, timeout, n.Name+" agent "+agent, func(st testenv.Status, code int) error {
		s, ok := st.Nodes[n.Host]
		if agent == "DOWN" && (!ok || s.Agent == "DOWN" || slices.Contains(st.MissingNodes, n.Host)) {
			return nil
		}
		if ok && s.Agent == agent {
			if agent == "UP" && n.PG != nil && (s.Type != "Standby" || s.DB != "UP") {
				return fmt.Errorf("%s %+v", n.Name, s)
			}
			return nil
		}
		return fmt.Errorf("%s %+v (present %v); missing %v", n.Name, s, ok, st.MissingNodes)
	})
}
