package netns

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// TestSynchronousPrimaryCutOffFromStandbys: synchronous.mode=on, and the
// primary's host is cut off from every other node while the client, which
// writes through the virtual IP, still reaches it. The old primary
// acknowledges nothing it cannot have a standby confirm (it cannot record
// going on alone without the majority), fences itself, and the new
// primary has every acknowledged write.
func TestSynchronousPrimaryCutOffFromStandbys(t *testing.T) {
	c := newClusterWith(t, 2, false, map[string]string{"synchronous.mode": "on"})
	old, witness := c.Primary(), c.Witnesses()[0]
	witness.WaitStatus(t, 60*time.Second, "both standbys synchronous", func(st testenv.Status, _ int) error {
		if st.SynchronousQuorum != 1 || len(st.SynchronousStandbys) != 2 {
			return fmt.Errorf("synchronous set ANY %d %v", st.SynchronousQuorum, st.SynchronousStandbys)
		}
		return nil
	})
	w := c.StartVIPWriter(t)
	w.WaitAcked(t, old.Host, 30*time.Second)

	cut := time.Now()
	for _, n := range c.Nodes[1:] {
		c.Net.Cut(t, old.NetHost, n.NetHost)
	}
	st := witness.WaitStatus(t, 60*time.Second, "a standby promoted", func(st testenv.Status, _ int) error {
		if st.Primary == "" || st.Primary == old.Host || st.PrimaryPhase != "promoted" {
			return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
		return nil
	})
	np := c.ByAddr(st.Primary)
	w.WaitAcked(t, np.Host, 60*time.Second)
	w.Stop()
	acked := w.Acked()
	var afterCut int
	for _, a := range acked {
		if a.Server == old.Host && a.At.After(cut.Add(time.Second)) {
			afterCut++
		}
	}
	ids, err := np.WriteIDs()
	if err != nil {
		t.Fatal(err)
	}
	var lost []testenv.Write
	for _, a := range acked {
		if _, found := slices.BinarySearch(sortedIDs(ids), int32(a.ID)); !found {
			lost = append(lost, a)
		}
	}
	gap, late := testenv.History(acked, old.Host, np.Host)
	t.Logf("%d acknowledged writes, %d by the old primary more than 1 s after the cut, %d lost; longest gap %s",
		len(acked), afterCut, len(lost), gap.Round(time.Millisecond))
	if len(late) > 0 {
		t.Errorf("%d writes acknowledged by the old primary after the new primary's first: %v", len(late), late)
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged writes lost in synchronous mode, the first %+v, the last %+v", len(lost), lost[0], lost[len(lost)-1])
	}
}

func sortedIDs(ids []int32) []int32 {
	if !slices.IsSorted(ids) {
		slices.Sort(ids)
	}
	return ids
}
