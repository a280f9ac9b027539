package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/decide"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/syncrep"
)

func syncOn(c *config.Config) { c.SyncMode, c.SyncNodeCount = syncrep.On, 1 }

// newSyncCluster starts a primary and two standbys at the same position,
// each agent configured by change, published and reconciled.
func newSyncCluster(t *testing.T, change func(*config.Config)) (cl *flowCluster, p, a2, a3 *flowAgent) {
	t.Helper()
	cl = newCluster(t, flowP1, []string{flowS2, flowS3}, []cluster.LSN{0x5000000, 0x5000000})
	p, a2, a3 = cl.start(flowP1, change), cl.start(flowS2, change), cl.start(flowS3, change)
	cl.coordinator(flowP1)
	cl.publishAll(p, a2, a3)
	for _, a := range []*flowAgent{p, a2, a3} {
		a.reconcile(cl.ctx)
	}
	return cl, p, a2, a3
}

// primaryNodeDies kills the primary p's agent and database and cuts it
// off; once its lease expired, the next coordinator decides on what the
// standbys publish. It returns that coordinator.
func (cl *flowCluster) primaryNodeDies(p *flowAgent, standbys ...*flowAgent) *flowAgent {
	cl.t.Helper()
	p.stop()
	cl.cut(p.self)
	p.pg.crash()
	cl.advance(flowNodeTimeout)
	c, guard := cl.coordinator(standbys[0].self)
	cl.publishAll(standbys...)
	c.decideOnce(cl.ctx, decide.Memory{}, 0, guard)
	return c
}

// wantSyncRecord checks the synchronous set recorded in etcd.
func (cl *flowCluster) wantSyncRecord(epoch uint64, quorum int, members ...string) {
	cl.t.Helper()
	r, _, err := cl.store.Sync(cl.ctx)
	cl.must(err)
	if r == nil || r.Epoch != epoch || r.Quorum != quorum || !slices.Equal(r.Members, members) {
		cl.t.Fatalf("synchronous set %+v, want epoch %d ANY %d %q", r, epoch, quorum, members)
	}
}

// Synchronous mode, on: the primary's agent waits for every streaming
// standby, narrows the set when one stops streaming (etcd after the
// setting), and a failover then promotes only from the recorded set, even
// when a standby outside it has received more WAL.
func TestFlowSynchronousModePromotesOnlyFromTheSet(t *testing.T) {
	cl, p, a2, a3 := newSyncCluster(t, syncOn)

	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 1, flowS2, flowS3)
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`)
	p.manageSync(cl.ctx) // nothing changed: nothing done
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`)

	// s3 stops streaming: the setting narrows first; the record narrows
	// only once s2 has flushed every write acknowledged before (some may
	// have been on s3 alone).
	a2.pg.set(func(o *cluster.DBObservation) { o.ReceiveLSN = 0x4FFF000 })
	a3.pg.set(func(o *cluster.DBObservation) { o.WalReceiver, o.SenderHost = "", "" })
	p.manageSync(cl.ctx) // s3's agent has not said so yet: nothing changes
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`)
	cl.publishAll(a2, a3)
	p.manageSync(cl.ctx)
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`, `synchronous_standby_names=ANY 1 ("10.0.0.2")`)
	cl.wantSyncRecord(1, 1, flowS2, flowS3)
	a2.pg.set(func(o *cluster.DBObservation) { o.ReceiveLSN = 0x5000000 })
	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 1, flowS2)
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`, `synchronous_standby_names=ANY 1 ("10.0.0.2")`)

	// s3 gets more WAL than s2 (it is outside the set: what it holds was
	// never acknowledged), then the primary's node dies.
	a3.pg.set(func(o *cluster.DBObservation) { o.ReceiveLSN, o.ReplayLSN = 0x5001000, 0x5001000 })
	cl.primaryNodeDies(p, a2, a3)
	rec, _ := cl.record()
	if rec.Node != flowS2 || rec.Epoch != 2 {
		t.Fatalf("record %+v; want epoch 2 naming %s, the only synchronous standby, not %s with more WAL", rec, flowS2, flowS3)
	}

	// The new primary records its own set (nobody yet) before it promotes.
	cl.sync(a2, a3)
	a2.reconcile(cl.ctx)
	wantDB(t, a2, "synchronous_standby_names=", "promote")
	cl.wantSyncRecord(2, 0)
}

// Synchronous mode, on, with no standby left: the primary goes on alone,
// says so loudly, and a failover then promotes nobody.
func TestFlowSynchronousModeAloneFailsOverToNobody(t *testing.T) {
	cl, p, a2, a3 := newSyncCluster(t, syncOn)
	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 1, flowS2, flowS3)

	// Both standbys stop streaming: record first (quorum 0), then the
	// setting, which the record already covers.
	for _, a := range []*flowAgent{a2, a3} {
		a.pg.set(func(o *cluster.DBObservation) { o.WalReceiver, o.SenderHost = "", "" })
	}
	cl.publishAll(a2, a3)
	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 0)
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`, "synchronous_standby_names=")
	cl.wantNotified(flowP1 + ": Synchronous replication suspended")

	c := cl.primaryNodeDies(p, a2, a3)
	if rec, _ := cl.record(); rec.Epoch != 1 {
		t.Fatalf("record %+v: a standby was promoted although the primary had acknowledged writes alone", rec)
	}
	cl.waitFor("the failover-not-occurred notification", func() bool {
		for _, n := range cl.log.notifications() {
			if strings.HasPrefix(n, flowS2+": "+decide.SubjectFailoverNotOccurred) {
				return true
			}
		}
		return false
	})

	// An operator may force it, knowing the risk.
	_, err := c.commitManual(cl.ctx, httpapi.PromoteRequest{}, flowS3)
	if err == nil || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("promote without -force: %v; want a refusal that names -force", err)
	}
	f, err := c.commitManual(cl.ctx, httpapi.PromoteRequest{Force: true}, flowS3)
	if err != nil || f.To != flowS3 || !strings.Contains(f.Reason, "acknowledged writes may be lost") {
		t.Fatalf("promote -force: %+v, %v", f, err)
	}
}

// EFM's model: synchronous.mode=off and a synchronous_standby_names the
// user wrote. With reconfigure.num.sync the primary's agent lowers the
// number when a listed standby stops streaming and, with
// reconfigure.num.sync.max, raises it back when it returns; with none left
// and reconfigure.sync.primary, it clears the setting.
func TestFlowEFMReconfigureNumSync(t *testing.T) {
	cl, p, a2, a3 := newSyncCluster(t, func(c *config.Config) {
		c.ReconfigureNumSync, c.ReconfigureNumSyncMax, c.ReconfigureSyncPrimary = true, 2, true
	})
	p.pg.mu.Lock()
	p.pg.syncNames = `ANY 2 ("10.0.0.2", "10.0.0.3")` // set by the user
	p.pg.mu.Unlock()
	check := func(want string) {
		t.Helper()
		p.mu.Lock()
		p.sync.lastNumSyncCheck = time.Time{} // the period has passed
		p.mu.Unlock()
		p.manageSync(cl.ctx)
		p.pg.mu.Lock()
		got := p.pg.syncNames
		p.pg.mu.Unlock()
		if got != want {
			t.Fatalf("synchronous_standby_names %q, want %q", got, want)
		}
	}
	check(`ANY 2 ("10.0.0.2", "10.0.0.3")`) // both stream: nothing to do
	a3.pg.set(func(o *cluster.DBObservation) { o.WalReceiver, o.SenderHost = "", "" })
	check(`ANY 1 ("10.0.0.2", "10.0.0.3")`)
	cl.wantNotified(flowP1 + ": Synchronous replication reconfigured")
	a3.pg.set(func(o *cluster.DBObservation) { o.WalReceiver, o.SenderHost = "streaming", flowP1 })
	check(`ANY 2 ("10.0.0.2", "10.0.0.3")`)
	for _, a := range []*flowAgent{a2, a3} {
		a.pg.set(func(o *cluster.DBObservation) { o.WalReceiver, o.SenderHost = "", "" })
	}
	check("")
	cl.wantNotified(flowP1 + ": Synchronous replication disabled")
	if r, _, _ := cl.store.Sync(cl.ctx); r != nil {
		t.Errorf("EFM's model records no synchronous set, got %+v", r)
	}
}

// A standby cut off from the primary alone may keep reporting streaming
// (its WAL receiver waits for wal_receiver_timeout): once the primary has
// not seen it among its WAL senders for node.timeout, it leaves the set.
func TestFlowSynchronousStandbyUnseenLeaves(t *testing.T) {
	cl, p, _, a3 := newSyncCluster(t, syncOn)
	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 1, flowS2, flowS3)

	// The primary no longer sees s3 stream; s3's agent still says it does.
	a3.pg.set(func(o *cluster.DBObservation) { o.SenderHost = "10.9.9.9" })
	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 1, flowS2, flowS3)
	p.mu.Lock()
	p.sync.unseenSince[flowS3] = time.Now().Add(-p.cfg.NodeTimeout)
	p.mu.Unlock()
	p.manageSync(cl.ctx)
	cl.wantSyncRecord(1, 1, flowS2)
	wantDB(t, p, `synchronous_standby_names=ANY 1 ("10.0.0.2", "10.0.0.3")`, `synchronous_standby_names=ANY 1 ("10.0.0.2")`)
}
