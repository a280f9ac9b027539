package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// A switchover, step by step: the old primary stops cleanly and reports
// its last checkpoint; the target promotes only once it has replayed past
// it; the old primary then starts as the new primary's standby, never
// idle, and the operator's request sees each step.
func TestFlowSwitchover(t *testing.T) {
	cl, ag := formed(t, 0x5000000, 0x5000000)
	p, a2, a3 := ag[0], ag[1], ag[2]

	done := make(chan httpapi.PromoteResult, 1)
	go func() {
		res, err := a3.Promote(cl.ctx, httpapi.PromoteRequest{Switchover: true, Target: flowS2})
		if err != nil {
			t.Errorf("switchover refused: %v", err)
		}
		done <- res
	}()
	cl.waitFor("the switchover is committed", func() bool { rec, _ := cl.record(); return rec.Epoch == 2 })
	rec, _ := cl.record()
	if rec.Node != flowS2 || rec.Previous != flowP1 || !rec.Switchover || rec.Phase != dcs.PhasePromoting {
		t.Fatalf("record %+v, want a switchover from %s to %s", rec, flowP1, flowS2)
	}
	cl.sync(p, a2, a3)

	promoted := make(chan struct{})
	go func() { defer close(promoted); a2.reconcile(cl.ctx) }()
	p.reconcile(cl.ctx)
	wantDB(t, p, "checkpoint", "follow "+flowS2, "stop fast", "controldata")
	p.publish(cl.ctx)
	if st, _ := cl.status(flowP1); st.Demoted == nil || st.Demoted.Checkpoint != 0x5000000 || !strings.Contains(st.IdleReason, "switchover") {
		t.Fatalf("the old primary published %+v (demoted %+v); want its checkpoint 0/5000000 and the switchover as the reason it is down", st, st.Demoted)
	}

	// The target has not replayed the shutdown checkpoint yet: it waits.
	select {
	case <-promoted:
		t.Fatalf("promoted before replaying the old primary's last checkpoint; operations %q", cl.hist.get())
	case <-time.After(300 * time.Millisecond):
	}
	a2.pg.set(func(o *cluster.DBObservation) { o.ReceiveLSN, o.ReplayLSN = 0x5000080, 0x5000080 })
	select {
	case <-promoted:
	case <-time.After(5 * time.Second):
		t.Fatal("no promotion after the target replayed the old primary's last checkpoint")
	}
	wantDB(t, a2, "promote")

	// The old primary comes back as the new primary's standby.
	cl.sync(p)
	p.reconcile(cl.ctx)
	if got := p.pg.Calls()[4:]; !slices.Equal(got, []string{"standby.signal", "start"}) {
		t.Errorf("the old primary's database then saw %q, want standby.signal, start", got)
	}
	p.publish(cl.ctx)
	st, _ := cl.status(flowP1)
	if st.Type != cluster.Standby || st.DB.SenderHost != flowS2 {
		t.Fatalf("the old primary published %+v, want a standby streaming from %s", st, flowS2)
	}
	res := <-done
	var steps []string
	for _, s := range res.Steps {
		steps = append(steps, s.Name)
	}
	if !res.Done || !slices.Equal(steps, []string{"committed", "old primary stopped", "promoted", "old primary streaming"}) {
		t.Fatalf("result %+v (steps %q), want done with every step", res, steps)
	}
	ops := cl.hist.get()
	if slices.Index(ops, flowP1+": stop fast") > slices.Index(ops, flowS2+": promote") {
		t.Errorf("operations %q: promoted before the old primary stopped", ops)
	}
	for _, n := range cl.log.notifications() {
		if strings.Contains(n, "Idle") {
			t.Errorf("notification %q: a switchover makes nobody idle", n)
		}
	}
}

// The old primary's database crashes after the switchover was committed,
// before any clean stop: it takes no writes, and no clean stop will be
// reported, so the target promotes as after a failover once a clean stop
// would have been reported, and says so; it does not wait forever.
func TestFlowSwitchoverOldPrimaryCrashes(t *testing.T) {
	cl, ag := formed(t, 0x5000000)
	p, a2 := ag[0], ag[1]
	go func() { _, _ = a2.Promote(cl.ctx, httpapi.PromoteRequest{Switchover: true, Target: flowS2}) }()
	cl.waitFor("the switchover is committed", func() bool { rec, _ := cl.record(); return rec.Epoch == 2 })
	cl.sync(p, a2)
	p.pg.crash()
	p.publish(cl.ctx)

	start := time.Now()
	promoted := make(chan struct{})
	go func() { defer close(promoted); a2.reconcile(cl.ctx) }()
	select {
	case <-promoted:
		t.Fatalf("promoted at once, without waiting for a clean stop to be reported; operations %q", cl.hist.get())
	case <-time.After(time.Second):
	}
	select {
	case <-promoted:
	case <-time.After(a2.demoteGrace() + 5*time.Second):
		t.Fatal("still no promotion long after a clean stop would have been reported")
	}
	if waited := time.Since(start); waited < a2.demoteGrace() {
		t.Fatalf("promoted after %s, before the grace of %s", waited, a2.demoteGrace())
	}
	wantDB(t, a2, "promote")
	cl.waitFor("the notification", func() bool {
		return slices.Contains(cl.log.notifications(), flowS2+": Switchover became a failover")
	})
}

// The target never receives the old primary's last WAL (its WAL receiver
// stopped after the switchover was committed): it is not promoted with
// less; once its replay has not moved for demoteGrace it names the old
// primary again, which starts and is promoted back with nothing lost, and
// the target follows it.
func TestFlowSwitchoverTargetCannotReplay(t *testing.T) {
	cl, ag := formed(t, 0x5000000)
	p, a2 := ag[0], ag[1]
	done := make(chan httpapi.PromoteResult, 1)
	go func() {
		res, _ := p.Promote(cl.ctx, httpapi.PromoteRequest{Switchover: true})
		done <- res
	}()
	cl.waitFor("the switchover is committed", func() bool { rec, _ := cl.record(); return rec.Epoch == 2 })
	cl.sync(p, a2)
	p.reconcile(cl.ctx)
	wantDB(t, p, "checkpoint", "follow "+flowS2, "stop fast", "controldata")
	p.publish(cl.ctx)

	start := time.Now()
	gaveBack := make(chan struct{})
	go func() { defer close(gaveBack); a2.reconcile(cl.ctx) }()
	select {
	case <-gaveBack:
	case <-time.After(a2.demoteGrace() + 5*time.Second):
		t.Fatal("the target still waits long after its replay stopped moving")
	}
	if waited := time.Since(start); waited < a2.demoteGrace() {
		t.Fatalf("gave up after %s, before the grace of %s", waited, a2.demoteGrace())
	}
	wantDB(t, a2) // never promoted
	rec, _ := cl.record()
	if rec.Epoch != 3 || rec.Node != flowP1 || rec.Previous != flowS2 || rec.Phase != dcs.PhasePromoting || rec.Switchover || !rec.NoScripts ||
		!strings.Contains(rec.Reason, "aborted") {
		t.Fatalf("record %+v, want epoch 3 naming the old primary %s again, no scripts", rec, flowP1)
	}

	// The old primary starts its cleanly stopped database and is promoted back.
	cl.sync(p, a2)
	a2.publish(cl.ctx) // the target, in recovery, has seen epoch 3
	p.publish(cl.ctx)
	if st, _ := cl.status(flowP1); st.Type != cluster.Idle || !strings.Contains(st.IdleReason, "aborted") {
		t.Errorf("the old primary published %s %q while its database is down, want the aborted switchover as the reason", st.Type, st.IdleReason)
	}
	p.reconcile(cl.ctx)
	if got := p.pg.Calls()[4:]; !slices.Equal(got, []string{"standby.signal", "start", "promote"}) {
		t.Errorf("the old primary's database then saw %q, want standby.signal, start, promote", got)
	}
	rec, _ = cl.record()
	if rec.Epoch != 3 || rec.Node != flowP1 || rec.Phase != dcs.PhasePromoted {
		t.Fatalf("record %+v, want the old primary promoted back in epoch 3", rec)
	}
	cl.sync(a2)
	a2.reconcile(cl.ctx)
	if got := a2.pg.Calls(); len(got) != 0 || a2.followedEpoch() != 3 {
		t.Errorf("the target's database saw %q, followed epoch %d; want it to stream from %s in epoch 3, never promoted", got, a2.followedEpoch(), flowP1)
	}
	res := <-done
	if res.Done || !strings.Contains(res.Outcome, "aborted") {
		t.Errorf("promote returned %+v, want a failure that says the switchover was aborted", res)
	}
	cl.waitFor("the notification", func() bool {
		return slices.Contains(cl.log.notifications(), flowS2+": Switchover aborted")
	})
	for _, n := range cl.log.notifications() {
		if strings.Contains(n, "Idle") {
			t.Errorf("notification %q: an aborted switchover makes nobody idle", n)
		}
	}
}

// The target cannot replay the old primary's last WAL and the old
// primary's agent dies meanwhile: there is nobody to give the primary
// back to, its database is down, so the target promotes as after a
// failover and says so.
func TestFlowSwitchoverTargetCannotReplayOldAgentGone(t *testing.T) {
	cl, ag := formed(t, 0x5000000, 0x5000000)
	p, a2, a3 := ag[0], ag[1], ag[2]
	go func() { _, _ = a3.Promote(cl.ctx, httpapi.PromoteRequest{Switchover: true, Target: flowS2}) }()
	cl.waitFor("the switchover is committed", func() bool { rec, _ := cl.record(); return rec.Epoch == 2 })
	cl.sync(p, a2)
	p.reconcile(cl.ctx)
	p.publish(cl.ctx)
	promoted := make(chan struct{})
	go func() { defer close(promoted); a2.reconcile(cl.ctx) }()
	cl.waitFor("the target waits for replay", func() bool {
		return cl.log.logged("replaying up to its last checkpoint")
	})
	p.stop()
	cl.cut(flowP1)
	cl.advance(flowNodeTimeout + time.Second)
	if _, ok := cl.status(flowP1); ok {
		t.Fatal("the old primary's status outlived its lease")
	}
	select {
	case <-promoted:
	case <-time.After(a2.demoteGrace() + 5*time.Second):
		t.Fatal("no promotion long after the replay stopped moving")
	}
	wantDB(t, a2, "promote")
	if rec, _ := cl.record(); rec.Epoch != 2 || rec.Node != flowS2 || rec.Phase != dcs.PhasePromoted {
		t.Fatalf("record %+v, want %s promoted in epoch 2", rec, flowS2)
	}
	cl.waitFor("the notification", func() bool {
		return slices.Contains(cl.log.notifications(), flowS2+": Switchover became a failover")
	})
}
