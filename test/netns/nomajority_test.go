package netns

import (
	"testing"
	"time"
)

// TestNoMajority: primary, standby and witness all cut from each other:
// no side has a majority, so nobody is promoted.
func TestNoMajority(t *testing.T) {
	c := newCluster(t, 1, false)
	p, s, wn := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	c.Net.Cut(t, p.NetHost, s.NetHost)
	c.Net.Cut(t, p.NetHost, wn.NetHost)
	c.Net.Cut(t, s.NetHost, wn.NetHost)
	cut := time.Now()
	var stopped time.Duration
	for time.Since(cut) < 3*nodeTimeout {
		rec, err := s.InRecovery()
		if err != nil {
			t.Fatalf("cannot ask the standby: %v", err)
		}
		if !rec {
			t.Fatalf("the standby left recovery %s after the cut although no side has a majority", time.Since(cut))
		}
		if stopped == 0 && !p.DBRunning(t) {
			stopped = time.Since(cut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("primary's database stopped %s after the cut (0: still runs); the standby stayed in recovery for %s", stopped.Round(time.Millisecond), 3*nodeTimeout)
	if stopped == 0 {
		t.Errorf("the primary, without a majority, still runs its database after %s", 3*nodeTimeout)
	}
	if h := c.VIPHolders(t); len(h) > 0 && !(len(h) == 1 && h[0] == p && stopped == 0) {
		t.Errorf("without a majority the virtual IP is held by %v", names(h))
	}
}
