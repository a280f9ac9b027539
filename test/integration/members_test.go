package integration

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// createStandbyOnEmptyNode runs create-standby on n after emptying its
// data directory, as on a node never initialised (Debian's layout: its
// configuration lives elsewhere): the agent copies the primary p through a
// new replication slot, starts the copy as a standby and monitors it again.
// crashed names a primary that crashed earlier (its unsent writes may be
// missing).
func createStandbyOnEmptyNode(t *testing.T, fc *failoverCluster, p, n *testenv.Node, crashed string) {
	t.Helper()
	n.Stop(t)
	n.PG.Stop(t, "fast")
	conf := n.PG.MoveConfigOut(t)
	if err := os.RemoveAll(n.PG.DataDir); err != nil {
		t.Fatal(err)
	}
	n.WriteProperties(t, map[string]string{"db.config.dir": conf})
	n.Start(t)
	waitStatus(t, fc.Nodes[3], 60*time.Second, "the empty node's agent idle", func(st efmStatus, _ int) error {
		return checkErr(st.Nodes[n.Host].Agent == "IDLE", "node %+v", st.Nodes[n.Host])
	})

	out := cli(t, n, "create-standby", "prod", "-slot", "node2_slot")
	t.Logf("create-standby:\n%s", out)
	if !strings.Contains(out, "streaming from "+p.Host) {
		t.Fatalf("create-standby printed:\n%s", out)
	}
	waitStreaming(t, n, p)
	var slotActive bool
	p.PG.QueryRow(t, "SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = 'node2_slot'), false)", &slotActive)
	if !slotActive {
		t.Fatal("the standby does not stream through slot node2_slot")
	}
	waitStatus(t, fc.Nodes[3], 60*time.Second, "the new standby monitored", func(st efmStatus, _ int) error {
		nn := st.Nodes[n.Host]
		return checkErr(nn.Type == "Standby" && nn.Agent == "UP" && nn.DB == "UP", "node %+v", nn)
	})
	lost := fc.noLostWrites(t, p, crashed)
	testenv.WaitFor(t, 30*time.Second, "the writes on the new standby", func() (bool, error) {
		var rows int
		if err := n.PG.TryQueryRow("SELECT count(*) FROM pgfm_writes", &rows); err != nil {
			return false, err
		}
		// A write may commit without its acknowledgement reaching the
		// writer before it stopped: at least every acknowledged one the
		// primary has (the crashed primary's unsent tail is not there).
		want := len(fc.writer.Acked()) - lost
		return check(rows >= want, "%d rows of %d", rows, want)
	})
	// Refused on the primary.
	if _, errOut, code := p.CLI(t, "create-standby", "prod"); code == 0 || !strings.Contains(errOut, "this node is the cluster's primary") {
		t.Fatalf("create-standby on the primary: exit %d, %s", code, errOut)
	}
}

// resetMembers runs reset-members on p while the node gone is down: it
// removes that node, and nothing else; the other agents rewrite their
// .nodes files.
func resetMembers(t *testing.T, fc *failoverCluster, p, gone *testenv.Node) {
	t.Helper()
	waitStatus(t, fc.Nodes[3], 30*time.Second, "the node seen down", func(st efmStatus, _ int) error {
		return checkErr(st.Nodes[gone.Host].Agent == "DOWN", "node %+v", st.Nodes[gone.Host])
	})
	out := cli(t, p, "reset-members", "prod")
	if !strings.Contains(out, "Removed from cluster prod: "+gone.Host) {
		t.Fatalf("reset-members printed %q", out)
	}
	st := waitStatus(t, fc.Nodes[3], 30*time.Second, "the node gone from the status", func(st efmStatus, _ int) error {
		if _, ok := st.Nodes[gone.Host]; ok || slices.Contains(st.AllowedNodes, gone.Host) {
			return fmt.Errorf("nodes %v, allowed %v", st.Nodes, st.AllowedNodes)
		}
		return nil
	})
	if len(st.Nodes) != 3 || st.Primary != p.Host {
		t.Fatalf("status after reset-members: %+v", st)
	}
	testenv.WaitFor(t, 30*time.Second, "the .nodes files rewritten", func() (bool, error) {
		for _, n := range fc.Nodes {
			if n == gone {
				continue
			}
			if f := strings.Join(nodesFile(t, n), " "); strings.Contains(f, gone.Host) {
				return false, fmt.Errorf("%s's .nodes still lists %s: %s", n.Name, gone.Host, f)
			}
		}
		return true, nil
	})
	if out := cli(t, p, "reset-members", "prod"); !strings.Contains(out, "nothing to remove") {
		t.Fatalf("second reset-members printed %q", out)
	}
}
