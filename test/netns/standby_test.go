package netns

import (
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// TestStandbyOrWitnessCutOff: a standby, then the witness, cut off from
// every other host and healed: no failover, and each rejoins by itself.
func TestStandbyOrWitnessCutOff(t *testing.T) {
	c := newCluster(t, 2, false)
	p := c.Primary()
	w := c.StartVIPWriter(t)
	w.WaitAcked(t, p.Host, 30*time.Second)
	for _, n := range []*testenv.NetNode{c.Nodes[1], c.Witnesses()[0]} {
		t.Logf("isolating %s", n.Name)
		c.Net.Isolate(t, n.NetHost)
		waitAgent(t, p, n, "DOWN", 30*time.Second)
		holdNoFailover(t, c, p, 3*nodeTimeout)
		c.Net.Heal(t)
		healed := time.Now()
		waitAgent(t, p, n, "UP", 90*time.Second)
		t.Logf("%s shown agent UP again %s after the heal", n.Name, time.Since(healed).Round(time.Millisecond))
		holdNoFailover(t, c, n, nodeTimeout)
	}
	if h := c.VIPHolders(t); len(h) != 1 || h[0] != p {
		t.Fatalf("the virtual IP is held by %v, want the primary only", names(h))
	}
	before := len(w.Acked())
	w.WaitAcked(t, p.Host, 10*time.Second)
	time.Sleep(time.Second)
	w.Stop()
	acked := w.Acked()
	if len(acked) <= before {
		t.Fatal("no writes after the last heal")
	}
	for _, a := range acked {
		if a.Server != p.Host {
			t.Fatalf("write acknowledged by %s, not the primary: %+v", a.Server, a)
		}
	}
	gap, _ := testenv.History(acked, p.Host, "")
	t.Logf("longest gap between writes through the virtual IP: %s", gap.Round(time.Millisecond))
}
