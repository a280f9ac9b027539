package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
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

// TestIsolatedPrimaryResumesWhenNobodyPromoted (EFM 4.5): the primary is
// cut off from every other host and fences itself; with
// auto.failover=false the majority promotes nobody. Once the network
// heals, the primary, still named in the same epoch, runs its database
// again as the primary, takes the virtual IP back, and the standby streams
// from it.
func TestIsolatedPrimaryResumesWhenNobodyPromoted(t *testing.T) {
	c := newClusterWith(t, 1, false, map[string]string{"auto.failover": "false"})
	p, s := c.Nodes[0], c.Nodes[1]
	c.Net.Isolate(t, p.NetHost)
	testenv.WaitFor(t, 30*time.Second, "the isolated primary's database stopped", func() (bool, error) {
		if p.DBRunning(t) {
			return false, fmt.Errorf("still runs")
		}
		return true, nil
	})
	s.WaitStatus(t, 30*time.Second, "the primary's agent seen gone, nobody promoted", func(st testenv.Status, _ int) error {
		if n, ok := st.Nodes[p.Host]; st.Epoch != 1 || st.Primary != p.Host || (ok && n.Agent != "DOWN") {
			return fmt.Errorf("epoch %d primary %s, %s %+v", st.Epoch, st.Primary, p.Name, n)
		}
		return nil
	})

	c.Net.Heal(t)
	healed := time.Now()
	testenv.WaitFor(t, 60*time.Second, "the primary writable again", func() (bool, error) {
		rec, err := p.InRecovery()
		if err != nil {
			return false, err
		}
		if rec {
			return false, fmt.Errorf("still in recovery")
		}
		return true, nil
	})
	t.Logf("the primary is writable again %s after the network healed", time.Since(healed).Round(time.Millisecond))
	waitVIPOn(t, c, p, 30*time.Second)
	testenv.WaitFor(t, 60*time.Second, "the standby streams from the resumed primary", func() (bool, error) {
		var sender string
		if err := s.TryQueryRow("SELECT coalesce((SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'), '')", &sender); err != nil {
			return false, err
		}
		if sender != p.Addr.String() {
			return false, fmt.Errorf("streams from %q", sender)
		}
		return true, nil
	})
	st, _, err := s.Status(t)
	if err != nil || st.Epoch != 1 || st.Primary != p.Host {
		t.Fatalf("after the resume: epoch %d, primary %s (%v); want epoch 1 and %s", st.Epoch, st.Primary, err, p.Host)
	}
	if !strings.Contains(p.Output(), "the database runs again as the primary") {
		t.Error("the primary's agent did not log that it resumed as the primary")
	}
}
