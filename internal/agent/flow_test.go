package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/decide"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/node"
)

const (
	flowP1 = "10.0.0.1"
	flowS2 = "10.0.0.2"
	flowS3 = "10.0.0.3"
)

// The primary's node dies (agent and database): once its lease expires,
// the next coordinator names the standby with the most WAL (epoch 2); that
// standby promotes and records it; the other follows it, once.
func TestFlowPrimaryNodeDies(t *testing.T) {
	cl := newCluster(t, flowP1, []string{flowS2, flowS3}, []cluster.LSN{0x4FFF000, 0x5000000})
	p, a2, a3 := cl.start(flowP1), cl.start(flowS2), cl.start(flowS3)
	cl.coordinator(flowP1)
	cl.publishAll(p, a2, a3)
	for _, a := range []*flowAgent{p, a2, a3} {
		a.reconcile(cl.ctx) // the standbys adopt epoch 1 as followed: they stream from the primary
	}
	if rec, _ := cl.record(); rec.LastLSN != 0x5000000 {
		t.Errorf("the primary's publication left LastLSN %s, want 0/5000000", rec.LastLSN)
	}

	// A healthy cluster: the coordinator decides nothing.
	_, guard := cl.coordinator(flowP1)
	p.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	if rec, _ := cl.record(); rec.Epoch != 1 || rec.Node != flowP1 {
		t.Fatalf("healthy cluster: record %+v", rec)
	}

	// The primary's node dies: its agent stops renewing, its database is gone.
	p.stop()
	cl.cut(flowP1)
	p.pg.crash()
	cl.advance(flowNodeTimeout)
	if _, live := cl.status(flowP1); live {
		t.Fatal("the dead primary's status outlived its lease")
	}
	c, guard := cl.coordinator(flowS2) // the oldest campaign left
	cl.publishAll(a2, a3)              // both now probe the old primary's database: down
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)

	rec, _ := cl.record()
	if rec.Node != flowS3 || rec.Epoch != 2 || rec.Phase != dcs.PhasePromoting || rec.Previous != flowP1 ||
		!strings.Contains(rec.Reason, "lease gone") || !strings.Contains(rec.Reason, flowS3+" has the most WAL") {
		t.Fatalf("after the coordinator's decision the record is %+v; want epoch 2 promoting %s (most WAL) replacing %s", rec, flowS3, flowP1)
	}
	cl.sync(a2, a3)

	// While the promotion is under way, the other standby waits.
	a2.reconcile(cl.ctx)
	wantDB(t, a2)

	a3.reconcile(cl.ctx)
	wantDB(t, a3, "promote")
	rec, _ = cl.record()
	if rec.Node != flowS3 || rec.Epoch != 2 || rec.Phase != dcs.PhasePromoted || rec.Timeline != 2 || rec.LastLSN != 0x5000000 {
		t.Fatalf("after the promotion the record is %+v; want epoch 2 promoted, timeline 2, LastLSN 0/5000000", rec)
	}
	cl.sync(a2, a3)
	a2.reconcile(cl.ctx)
	wantDB(t, a2, "follow "+flowS3, "restart")
	if got := followedFile(a2); got != "2" {
		t.Errorf("followed epoch stored %q, want 2", got)
	}

	// Every step is idempotent: nothing more happens.
	for range 3 {
		a2.reconcile(cl.ctx)
		a3.reconcile(cl.ctx)
		c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	}
	wantDB(t, a2, "follow "+flowS3, "restart")
	wantDB(t, a3, "promote")
	if got, _ := cl.record(); got.Epoch != 2 {
		t.Errorf("record moved on to %+v", got)
	}
	cl.publishAll(a2, a3)
	if st, _ := cl.status(flowS3); st.Type != cluster.Primary || st.Epoch != 2 {
		t.Errorf("new primary publishes %s at epoch %d", st.Type, st.Epoch)
	}
	if h := a3.Health(); !h.Primary {
		t.Errorf("the new primary's health: %+v, want Primary", h)
	}
	cl.wantNotified(flowS2+": Primary database failure", flowS3+": Promotion has started", flowS3+": Failover has completed", flowS2+": Standby reconfigured")
}

// The primary is cut off from the majority: its lease runs out on the
// clock and it fences its database (standby.signal, stop immediate)
// once for that lease, whichever of its loops sees it first; it then
// refuses a local restart. Only after its lease expired everywhere is a
// standby promoted; the cut-off coordinator can no longer commit.
func TestFlowIsolatedPrimaryFencesOncePerLease(t *testing.T) {
	cl := newCluster(t, flowP1, []string{flowS2, flowS3}, []cluster.LSN{0x5000000, 0x4000000})
	p, a2, a3 := cl.start(flowP1, func(c *config.Config) { c.PrimaryRestartTimeout = time.Second }), cl.start(flowS2), cl.start(flowS3)
	_, oldGuard := cl.coordinator(flowP1)
	cl.publishAll(p, a2, a3)

	cl.cut(flowP1)
	margin := config.FenceMargin(flowNodeTimeout)
	cl.advance(flowNodeTimeout - margin - 500*time.Millisecond)
	p.reconcile(cl.ctx)
	wantDB(t, p) // still valid past the margin

	cl.advance(600 * time.Millisecond)
	if p.leaseValidFor(margin) {
		t.Fatalf("the cut primary's lease is valid until %s from now, past the margin %s", time.Until(p.lease.Until()), margin)
	}
	// The fence loop and the role loop both see it, at once and again.
	fctx, stopFence := context.WithCancel(cl.ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.fenceLoop(fctx) }()
	for range 5 {
		p.reconcile(cl.ctx)
	}
	cl.waitFor("the fence loop ran", func() bool { return len(p.pg.Calls()) > 0 })
	time.Sleep(300 * time.Millisecond) // three more ticks of the fence loop
	stopFence()
	<-done
	wantDB(t, p, "standby.signal", "stop immediate")
	// Even a loop that decided on an older observation fences no more.
	p.act(cl.ctx, []node.Action{node.FenceIsolated{Until: p.lease.Until()}}, func(node.Action) bool { return true })
	wantDB(t, p, "standby.signal", "stop immediate")
	if r := p.rejoinNeeded(); !strings.Contains(r, "could not renew its lease") {
		t.Errorf("rejoin reason %q", r)
	}
	cl.wantNotified(flowP1 + ": Isolated primary database shutdown")

	// No way back to writable while cut off.
	if err := p.exec.start(cl.ctx, time.Second); !errors.Is(err, errLease) {
		t.Errorf("local start of the isolated primary: %v, want errLease", err)
	}
	p.restartLocally(cl.ctx)
	cl.waitFor("the local restart gave up", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.restartingUntil.IsZero()
	})
	wantDB(t, p, "standby.signal", "stop immediate")

	// Its lease expires everywhere: the next coordinator fails over.
	cl.advance(margin)
	c, guard := cl.coordinator(flowS2)
	cl.publishAll(a2, a3)
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	cl.sync(a2, a3)
	a2.reconcile(cl.ctx)
	rec, _ := cl.record()
	if rec.Node != flowS2 || rec.Epoch != 2 || rec.Phase != dcs.PhasePromoted {
		t.Fatalf("record %+v, want epoch 2 promoted on %s", rec, flowS2)
	}
	if ops := cl.hist.get(); slices.Index(ops, flowP1+": stop immediate") > slices.Index(ops, flowS2+": promote") {
		t.Errorf("database operations %q: the new primary was promoted before the isolated one stopped", ops)
	}

	// The old coordinator, cut off, cannot commit anything any more.
	snap, _ := cl.store.Snapshot(cl.ctx)
	p.commitFailover(cl.ctx, snap, decide.Failover{From: flowS2, To: flowS3, NewEpoch: 3}, oldGuard)
	if got, _ := cl.record(); got.Epoch != 2 {
		t.Errorf("a deposed coordinator committed %+v", got)
	}
}

// A primary that kept running through a cut (stop.isolated.primary=false)
// comes back after a failover: it stops its database for good, says it
// needs a rejoin, and cannot be resumed while its database is down.
func TestFlowStalePrimaryAfterFailover(t *testing.T) {
	cl := newCluster(t, flowP1, []string{flowS2, flowS3}, []cluster.LSN{0x5000000, 0x4000000})
	p := cl.start(flowP1, func(c *config.Config) { c.StopIsolatedPrimary = false })
	a2, a3 := cl.start(flowS2), cl.start(flowS3)
	cl.publishAll(p, a2, a3)

	cl.cut(flowP1)
	cl.advance(flowNodeTimeout - config.FenceMargin(flowNodeTimeout))
	p.reconcile(cl.ctx)
	wantDB(t, p) // stop.isolated.primary=false: left running
	cl.wantNotified(flowP1 + ": Primary isolated")

	cl.advance(time.Second)
	c, guard := cl.coordinator(flowS2)
	cl.publishAll(a2, a3) // the old primary's database is unreachable across the cut
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	cl.sync(a2, a3)
	a2.reconcile(cl.ctx)
	if rec, _ := cl.record(); rec.Node != flowS2 || rec.Epoch != 2 || rec.Phase != dcs.PhasePromoted {
		t.Fatalf("record %+v, want epoch 2 promoted on %s", rec, flowS2)
	}

	// The cut heals: the old primary gets a new lease and sees epoch 2.
	cl.heal(flowP1)
	cl.sync(p)
	cl.newLease(p)
	p.reconcile(cl.ctx)
	wantDB(t, p, "standby.signal", "stop immediate")
	want := "epoch 2 named " + flowS2 + " primary; this node needs a rejoin"
	if r := p.rejoinNeeded(); !strings.Contains(r, want) {
		t.Errorf("rejoin reason %q, want it to say %q", r, want)
	}
	p.publish(cl.ctx)
	if st, _ := cl.status(flowP1); st.Type != cluster.Idle || !strings.Contains(st.IdleReason, want) {
		t.Errorf("the stale primary publishes %s (%q), want Idle saying %q", st.Type, st.IdleReason, want)
	}
	if h := p.Health(); h.Primary {
		t.Errorf("the stale primary's health says Primary: %+v", h)
	}
	cl.wantNotified(flowP1 + ": Primary database being fenced off")

	// It stays down: no second stop, standby.signal kept, no resume.
	p.reconcile(cl.ctx)
	if calls := p.pg.Calls(); slices.Contains(calls[2:], "stop immediate") || slices.Contains(calls, "start") {
		t.Errorf("database saw %q after the fence", calls)
	}
	p.setReady(true)
	_, err := p.Resume(cl.ctx)
	var he *httpapi.Error
	if !errors.As(err, &he) || he.Status != http.StatusConflict || !strings.Contains(err.Error(), "start it first") {
		t.Errorf("Resume of the fenced stale primary: %v, want a 409 saying to start it first", err)
	}

	// The operator rejoins it as a standby of the new primary: it resumes.
	p.pg.set(func(o *cluster.DBObservation) {
		*o = cluster.DBObservation{Up: true, InRecovery: true, Timeline: 2, ReceiveLSN: 0x5000100, WalReceiver: "streaming", SenderHost: flowS2}
	})
	if msg, err := p.Resume(cl.ctx); err != nil || !strings.Contains(msg, "resumed") {
		t.Fatalf("Resume after the rejoin = %q, %v", msg, err)
	}
	p.publish(cl.ctx)
	p.reconcile(cl.ctx)
	if st, _ := cl.status(flowP1); st.Type != cluster.Standby || st.IdleReason != "" || p.rejoinNeeded() != "" {
		t.Errorf("the rejoined node publishes %s (%q), rejoin reason %q; want a Standby", st.Type, st.IdleReason, p.rejoinNeeded())
	}
	if calls := p.pg.Calls(); slices.Contains(calls, "start") || slices.Contains(calls, "promote") || calls[len(calls)-1] != "standby.signal" {
		t.Errorf("database saw %q after the rejoin", calls)
	}
}

// The primary's postmaster hangs (it runs but does not answer): after the
// failover, its agent stops that postmaster (stop.failed.primary), once
// for the epoch, and keeps the database down.
func TestFlowFailedPrimaryIsStopped(t *testing.T) {
	cl := newCluster(t, flowP1, []string{flowS2}, []cluster.LSN{0x5000000})
	a2, p := cl.start(flowS2), cl.start(flowP1)
	c, guard := cl.coordinator(flowS2)
	// A postmaster.pid naming a live process: the postmaster is not gone.
	cl.must(os.WriteFile(filepath.Join(p.cfg.DB.DataDir, "postmaster.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600))
	cl.publishAll(p, a2)
	p.pg.set(func(o *cluster.DBObservation) { o.Up, o.Error = false, "timeout" })
	p.pg.mu.Lock()
	p.pg.running, p.pg.started = true, time.Now().Add(-time.Hour)
	p.pg.mu.Unlock()
	cl.publishAll(p, a2)
	if st, _ := cl.status(flowP1); st.Type != cluster.Idle || st.PostmasterGone {
		t.Fatalf("the hung primary publishes %s (postmaster gone %v), want Idle with its postmaster running", st.Type, st.PostmasterGone)
	}
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard) // local.timeout.final 0
	if rec, _ := cl.record(); rec.Node != flowS2 || rec.Epoch != 2 {
		t.Fatalf("record %+v, want epoch 2 on %s", rec, flowS2)
	}
	cl.sync(p, a2)
	for range 3 {
		p.reconcile(cl.ctx)
	}
	wantDB(t, p, "stop immediate", "standby.signal", "standby.signal", "standby.signal")
	p.publish(cl.ctx)
	a2.reconcile(cl.ctx)
	wantDB(t, a2, "promote")
}

// A standby whose agent (re)starts after a failover, while its WAL
// receiver still reports streaming from the old primary (whose host died
// without closing the connection), must re-point itself at the new one.
func TestFlowStandbyStartedAfterFailoverFollows(t *testing.T) {
	cl := newCluster(t, flowP1, []string{flowS2, flowS3}, []cluster.LSN{0x4FFF000, 0x5000000})
	_, rev := cl.record()
	if ok, err := cl.store.UpdatePrimary(cl.ctx, rev, dcs.Primary{Node: flowS3, Epoch: 2, Phase: dcs.PhasePromoted, Previous: flowP1, Timeline: 2, LastLSN: 0x5000000}); !ok || err != nil {
		t.Fatalf("commit the failover: %v %v", ok, err)
	}
	a2 := cl.start(flowS2)
	a2.reconcile(cl.ctx)
	wantDB(t, a2, "follow "+flowS3, "restart")
}

// A standby's database fails: its agent goes idle (never a candidate),
// refuses to resume while the database is down, and resumes once it is
// back, by hand or by auto.resume.failure.period.
func TestFlowIdleAndResume(t *testing.T) {
	for _, c := range []struct {
		name       string
		autoResume time.Duration
	}{
		{"by hand", 0},
		{"auto.resume.failure.period", time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := newCluster(t, flowP1, []string{flowS2}, []cluster.LSN{0x5000000})
			p := cl.start(flowP1)
			a := cl.start(flowS2, func(cfg *config.Config) { cfg.AutoResumeFailurePeriod = c.autoResume })
			a.setReady(true)
			if msg, err := a.Resume(cl.ctx); err != nil || !strings.Contains(msg, "is not idle") {
				t.Errorf("Resume of a monitoring agent = %q, %v", msg, err)
			}

			a.pg.crash()
			a.publish(cl.ctx)
			st, _ := cl.status(flowS2)
			if st.Type != cluster.Idle || !strings.Contains(st.IdleReason, "the local database failed") {
				t.Fatalf("after its database failed the standby publishes %s (%q), want Idle", st.Type, st.IdleReason)
			}
			cl.wantNotified(flowS2 + ": Idle agent")
			p.publish(cl.ctx)
			snap, _ := cl.store.Snapshot(cl.ctx)
			if cands := decide.Candidates(p.view(snap, 0)); len(cands) != 1 || cands[0].Reject == "" {
				t.Errorf("an idle standby is a candidate: %+v", cands)
			}

			_, err := a.Resume(cl.ctx)
			var he *httpapi.Error
			if !errors.As(err, &he) || he.Status != http.StatusConflict || !strings.Contains(err.Error(), "start it first") {
				t.Errorf("Resume while the database is down: %v, want a 409 saying to start it first", err)
			}

			a.pg.set(func(o *cluster.DBObservation) { o.Up, o.Error = true, "" })
			a.publish(cl.ctx)
			st, _ = cl.status(flowS2)
			if c.autoResume == 0 {
				if st.Type != cluster.Idle {
					t.Fatalf("idle is sticky until resume, yet the standby publishes %s", st.Type)
				}
				if msg, err := a.Resume(cl.ctx); err != nil || !strings.Contains(msg, "resumed") {
					t.Fatalf("Resume with the database back = %q, %v", msg, err)
				}
				a.publish(cl.ctx)
				st, _ = cl.status(flowS2)
			}
			if st.Type != cluster.Standby || st.IdleReason != "" {
				t.Errorf("after the resume the standby publishes %s (%q), want Standby", st.Type, st.IdleReason)
			}
			cl.wantNotified(flowS2 + ": Agent resumed")
			wantDB(t, a) // monitoring never touches the database
		})
	}
}

// The primary's database fails while its agent runs: the coordinator
// fails over at once (its postmaster is gone), and the new primary waits
// to promote until the old primary's agent has seen the new epoch with
// its database down, which it then keeps down.
func TestFlowPromotionWaitsForTheOldPrimary(t *testing.T) {
	for _, c := range []struct {
		name string
		// restarted: the old primary's database is started again (by
		// systemd, say) after the failover was committed.
		restarted bool
	}{
		{"old primary down", false},
		{"old primary restarted after the failover", true},
	} {
		t.Run(c.name, func(t *testing.T) { testPromotionWaits(t, c.restarted) })
	}
}

func testPromotionWaits(t *testing.T, restarted bool) {
	cl := newCluster(t, flowP1, []string{flowS2}, []cluster.LSN{0x5000000})
	a2, p := cl.start(flowS2), cl.start(flowP1)
	c, guard := cl.coordinator(flowS2)
	cl.publishAll(p, a2)

	p.pg.crash()
	cl.publishAll(p, a2)
	if st, _ := cl.status(flowP1); !st.PostmasterGone {
		t.Fatalf("the primary published %+v, want its postmaster gone", st)
	}
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	rec, _ := cl.record()
	if rec.Node != flowS2 || rec.Epoch != 2 || rec.Phase != dcs.PhasePromoting || !strings.Contains(rec.Reason, "postmaster is gone") {
		t.Fatalf("record %+v, want epoch 2 promoting %s because the postmaster is gone", rec, flowS2)
	}
	cl.sync(a2)

	// The old primary's agent still holds its lease and has not said it
	// saw epoch 2: no promotion yet.
	promoted := make(chan struct{})
	go func() { defer close(promoted); a2.reconcile(cl.ctx) }()
	select {
	case <-promoted:
		t.Fatalf("promoted while the old primary's agent had not seen the new epoch; database saw %q", a2.pg.Calls())
	case <-time.After(300 * time.Millisecond):
	}
	wantDB(t, a2)

	cl.sync(p)
	if restarted {
		// It comes back writable and says so at epoch 2: still no
		// promotion, until its agent has fenced it.
		p.pg.set(func(o *cluster.DBObservation) { o.Up, o.Error = true, "" })
		p.publish(cl.ctx)
		select {
		case <-promoted:
			t.Fatalf("promoted while the old primary was writable; database operations %q", cl.hist.get())
		case <-time.After(300 * time.Millisecond):
		}
		p.reconcile(cl.ctx)
		wantDB(t, p, "standby.signal", "stop immediate")
	}
	p.publish(cl.ctx) // epoch 2, database down
	select {
	case <-promoted:
	case <-time.After(5 * time.Second):
		t.Fatal("no promotion after the old primary confirmed its database is down")
	}
	wantDB(t, a2, "promote")
	if rec, _ := cl.record(); rec.Phase != dcs.PhasePromoted {
		t.Errorf("record %+v, want promoted", rec)
	}
	if ops := cl.hist.get(); restarted && slices.Index(ops, flowP1+": stop immediate") > slices.Index(ops, flowS2+": promote") {
		t.Errorf("database operations %q: promoted before the old primary stopped", ops)
	}

	// The old primary keeps its database unable to come back writable.
	cl.sync(p)
	calls := len(p.pg.Calls())
	p.reconcile(cl.ctx)
	if got := p.pg.Calls()[calls:]; !slices.Equal(got, []string{"standby.signal"}) {
		t.Errorf("the old primary's database then saw %q, want standby.signal", got)
	}
}

// A standby named by a failover while cut off does not promote (its lease
// is not valid past the fence margin); the record waits, and it promotes
// once its lease is renewed.
func TestFlowPromotionNeedsTheLease(t *testing.T) {
	cl := newCluster(t, flowP1, []string{flowS2}, []cluster.LSN{0x5000000})
	a2 := cl.start(flowS2)
	_, rev := cl.record()
	if ok, err := cl.store.UpdatePrimary(cl.ctx, rev, dcs.Primary{Node: flowS2, Epoch: 2, Phase: dcs.PhasePromoting, Timeline: 1, LastLSN: 0x5000000}); !ok || err != nil {
		t.Fatalf("commit the failover: %v %v", ok, err)
	}
	cl.sync(a2)
	cl.store.Cut(flowS2)
	cl.advance(flowNodeTimeout - config.FenceMargin(flowNodeTimeout) + 100*time.Millisecond)
	a2.reconcile(cl.ctx)
	wantDB(t, a2)
	if rec, _ := cl.record(); rec.Phase != dcs.PhasePromoting {
		t.Fatalf("record %+v, want still promoting", rec)
	}
	cl.store.Restore(flowS2)
	cl.store.RenewLeases(cl.ctx)
	a2.reconcile(cl.ctx)
	wantDB(t, a2, "promote")
	if rec, _ := cl.record(); rec.Phase != dcs.PhasePromoted || rec.Timeline != 2 {
		t.Errorf("record %+v, want promoted on timeline 2", rec)
	}
}

// A failover that ended promote-failed is left by its documented way:
// `pgfm promote -candidate` names another standby, which promotes once the
// named node's agent reports its database in recovery; the failed one
// follows it.
func TestFlowPromoteFailedLeftByPromote(t *testing.T) {
	cl, ag := formed(t, 0x5000000, 0x4FFF000)
	p, a2, a3 := ag[0], ag[1], ag[2]
	p.stop()
	cl.cut(flowP1)
	p.pg.crash()
	cl.advance(flowNodeTimeout)
	c, guard := cl.coordinator(flowS2)
	cl.publishAll(a2, a3)
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	if rec, _ := cl.record(); rec.Node != flowS2 || rec.Epoch != 2 {
		t.Fatalf("record %+v, want epoch 2 naming %s (most WAL)", rec, flowS2)
	}
	cl.sync(a2, a3)
	a2.pg.mu.Lock()
	a2.pg.promoteErr = errors.New("pg_promote: timeout")
	a2.pg.mu.Unlock()
	a2.reconcile(cl.ctx)
	if rec, _ := cl.record(); rec.Phase != dcs.PhasePromoteFailed {
		t.Fatalf("record %+v, want promote-failed", rec)
	}
	// The coordinator does not retry by itself: the named node may still
	// leave recovery.
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	if rec, _ := cl.record(); rec.Epoch != 2 {
		t.Fatalf("the coordinator moved on by itself: %+v", rec)
	}

	a2.publish(cl.ctx) // in recovery, at epoch 2
	done := make(chan httpapi.PromoteResult, 1)
	go func() {
		res, err := a3.Promote(cl.ctx, httpapi.PromoteRequest{Target: flowS3})
		if err != nil {
			t.Errorf("promote refused: %v", err)
		}
		done <- res
	}()
	cl.waitFor("the retry is committed", func() bool { rec, _ := cl.record(); return rec.Epoch == 3 })
	rec, _ := cl.record()
	if rec.Node != flowS3 || rec.Previous != flowS2 || rec.Phase != dcs.PhasePromoting || !strings.Contains(rec.Reason, "ended promote-failed") {
		t.Fatalf("record %+v, want epoch 3 promoting %s replacing %s after promote-failed", rec, flowS3, flowS2)
	}
	cl.sync(a2, a3)
	a2.publish(cl.ctx) // it has seen epoch 3, its database in recovery
	a3.reconcile(cl.ctx)
	wantDB(t, a3, "promote")
	cl.sync(a2)
	a2.reconcile(cl.ctx)
	if got := a2.pg.Calls(); !slices.Equal(got, []string{"promote", "follow " + flowS3, "restart"}) {
		t.Errorf("the standby whose promotion failed saw %q, want it to follow %s", got, flowS3)
	}
	if res := <-done; !res.Done {
		t.Errorf("promote returned %+v, want done", res)
	}
}

// A failover whose promoting node died before it promoted is left by its
// documented way: `pgfm promote` is refused while the named node's agent
// runs, and once its lease is gone names another standby, which promotes.
func TestFlowDeadPromotingNodeLeftByPromote(t *testing.T) {
	cl, ag := formed(t, 0x5000000, 0x4FFF000)
	p, a2, a3 := ag[0], ag[1], ag[2]
	p.pg.crash() // its postmaster killed; its agent, the coordinator, runs on
	cl.publishAll(p, a2, a3)
	_, guard := cl.coordinator(flowP1)
	p.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	if rec, _ := cl.record(); rec.Node != flowS2 || rec.Epoch != 2 || rec.Phase != dcs.PhasePromoting {
		t.Fatalf("record %+v, want epoch 2 promoting %s", rec, flowS2)
	}
	cl.sync(a3)
	if _, err := a3.Promote(cl.ctx, httpapi.PromoteRequest{}); err == nil || !strings.Contains(err.Error(), "under way") {
		t.Fatalf("promote while the promoting node's agent runs: %v, want a refusal", err)
	}

	a2.stop() // the named node dies before it promotes
	cl.cut(flowS2)
	cl.advance(flowNodeTimeout)
	if _, live := cl.status(flowS2); live {
		t.Fatal("the dead node's status outlived its lease")
	}
	done := make(chan httpapi.PromoteResult, 1)
	go func() {
		res, err := a3.Promote(cl.ctx, httpapi.PromoteRequest{})
		if err != nil {
			t.Errorf("promote refused once the promoting node is gone: %v", err)
		}
		done <- res
	}()
	cl.waitFor("the retry is committed", func() bool { rec, _ := cl.record(); return rec.Epoch == 3 })
	rec, _ := cl.record()
	if rec.Node != flowS3 || rec.Previous != flowS2 || rec.Phase != dcs.PhasePromoting {
		t.Fatalf("record %+v, want epoch 3 promoting %s replacing %s", rec, flowS3, flowS2)
	}
	cl.sync(a3)
	a3.reconcile(cl.ctx)
	wantDB(t, a3, "promote")
	if res := <-done; !res.Done || res.To != flowS3 {
		t.Errorf("promote returned %+v, want %s promoted", res, flowS3)
	}
}
