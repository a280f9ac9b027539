package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// measurePartition is the primary-partition scenario: a cluster in
// network namespaces, a client writing through the virtual IP, and the
// primary's host cut off from every other node but not from the client.
func measurePartition(t *runT, p profile, props map[string]string, res *result) {
	c := testenv.NewNetCluster(t, testenv.NetOptions{Standbys: 2, Witnesses: 1, Props: props})
	c.StartAll(t)
	old, witness := c.Primary(), c.Witnesses()[0]
	status := func() (clusterStatus, error) {
		st, _, err := witness.Status(t)
		return clusterStatus{Messages: st.Messages, Epoch: st.Epoch, Primary: st.Primary, PrimaryPhase: st.PrimaryPhase,
			SynchronousStandbys: st.SynchronousStandbys, SynchronousQuorum: st.SynchronousQuorum}, err
	}
	testenv.WaitFor(t, 60*time.Second, "the virtual IP on the primary", func() (bool, error) {
		return c.HoldsVIP(t, old), nil
	})
	if p.syncMode() {
		waitSynchronous(t, status)
	}
	w := c.StartVIPWriter(t)
	w.WaitAcked(t, old.Host, 30*time.Second)
	time.Sleep(baseline)
	note := func(format string, args ...any) { res.notes = append(res.notes, fmt.Sprintf(format, args...)) }

	fault := time.Now()
	res.commitP50, res.commitP99 = commitLatency(w.Acked(), fault)
	for _, n := range c.Nodes[1:] {
		c.Net.Cut(t, old.NetHost, n.NetHost)
	}
	var st clusterStatus
	first, ok := waitWriteElsewhere(w, old.Host, fault, failoverWait)
	if !ok {
		note("no write acknowledged by another server within %s of the fault", failoverWait)
	} else {
		res.resumedAfter = first.At.Sub(fault)
		st = waitPromoted(status, old.Host, first.Server, note)
	}
	w.Stop()
	stopped := time.Now()
	res.failover = st.Epoch > 1
	acked := w.Acked()
	np := c.ByAddr(st.Primary)
	newHost := ""
	if np != nil && np != old {
		newHost, res.newPrimary = np.Host, np.Name
	}
	gap, late := testenv.History(acked, old.Host, newHost)
	if len(acked) > 0 {
		gap = max(gap, stopped.Sub(acked[len(acked)-1].At))
	}
	res.gap, res.split = gap, len(late)
	if np == nil || np.PG == nil {
		res.noPrimary = true
		note("no new primary: the status names %q", st.Primary)
		return
	}
	if rec, err := np.InRecovery(); err != nil || rec {
		res.noPrimary = true
		note("the new primary %s is not writable (in recovery %t, %v)", np.Name, rec, err)
	}
	ids, err := np.WriteIDs()
	if err != nil {
		note("counting lost writes on %s: %v", np.Name, err)
		return
	}
	slices.Sort(ids)
	var lost []testenv.Write
	for _, a := range acked {
		if _, found := slices.BinarySearch(ids, int32(a.ID)); !found {
			lost = append(lost, a)
		}
	}
	res.lost, res.lostKnown = len(lost), true
	if len(lost) > 0 {
		note("%d acknowledged writes missing on the final primary %s: ids %v", len(lost), np.Name, writeIDs(lost, 20))
	}
}
