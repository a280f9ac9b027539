package netns

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// TestPacketLossNoFailover: 5 % of the packets of every host dropped for a
// minute (about 10 % between two hosts) is no reason to fail over, with
// the default timers. The harness's shorter ones (a 3 s lease, 0.5 s
// elections) failed over in about one run of three on 2 cores, before
// and after etcd's peer traffic became TLS: a lease that short does not
// ride out TCP's retransmissions at that loss.
func TestPacketLossNoFailover(t *testing.T) {
	c := newClusterWith(t, 2, false, map[string]string{"node.timeout": "5", "dcs.election.timeout": "1"})
	w := c.StartVIPWriter(t)
	for _, n := range c.Nodes {
		c.Net.Loss(t, n.NetHost, 5)
	}
	witness := c.Witnesses()[0]
	holdNoFailover(t, c, witness, time.Minute)
	c.Net.Heal(t)
	w.Stop()
	acked := w.Acked()
	if len(acked) == 0 {
		t.Fatal("no write went through the virtual IP")
	}
	gap, _ := testenv.History(acked, "", "")
	t.Logf("%d writes through the virtual IP under 5%% loss; longest gap %s", len(acked), gap)
	if !c.HoldsVIP(t, c.Primary()) {
		t.Fatal("the primary lost the virtual IP")
	}
}

// TestCheckVIPBeforePromotion: while the virtual IP still answers from
// another host, the chosen standby refuses to promote.
func TestCheckVIPBeforePromotion(t *testing.T) {
	c := testenv.NewNetCluster(t, testenv.NetOptions{Standbys: 1, Witnesses: 1, Props: map[string]string{"check.vip.timeout": "3"}})
	c.StartAll(t)
	waitVIPOn(t, c, c.Primary(), 30*time.Second)
	witness := c.Witnesses()[0]
	// Someone else (here: the witness's host, which pgfm never gives the
	// address) answers for the virtual IP.
	witness.NetHost.Run(t, "ip", "addr", "add", fmt.Sprintf("%s/%d", c.VIP, c.VIPPrefix), "dev", "eth0")
	c.Primary().PG.Kill(t)
	st := witness.WaitStatus(t, 60*time.Second, "the promotion refused", func(st testenv.Status, code int) error {
		if st.PrimaryPhase != "promote-failed" {
			return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
		return nil
	})
	t.Logf("messages: %v", st.Messages)
	found := false
	for _, m := range st.Messages {
		if strings.Contains(m, "virtual IP") && strings.Contains(m, "still answers") {
			found = true
		}
	}
	if !found {
		t.Fatalf("cluster-status does not say why: %v", st.Messages)
	}
	for _, n := range c.DBNodes()[1:] {
		rec, err := n.InRecovery()
		if err != nil || !rec {
			t.Fatalf("standby %s promoted although the virtual IP still answered (in recovery %v, %v)", n.Name, rec, err)
		}
	}
}
