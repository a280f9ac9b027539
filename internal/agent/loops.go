package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
)

// sessionLoop keeps a lease of node.timeout (the agent's liveness, under
// which its status lives) and campaigns for coordinator with it. A lost
// lease (e.g. cut off from the majority) is replaced by a new one.
func (a *Agent) sessionLoop(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := grantLease(ctx, a.cli, a.cfg.NodeTimeout, a.store.StatusKey(a.self))
		if err != nil {
			a.log.Warn("cannot create the agent's lease; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if l.ttl > a.cfg.NodeTimeout.Round(time.Second) {
			a.log.Warn("etcd granted a longer lease than node.timeout", "node_timeout", a.cfg.NodeTimeout, "granted", l.ttl)
		}
		sess, err := concurrency.NewSession(a.cli, concurrency.WithLease(l.id), concurrency.WithContext(ctx))
		if err != nil {
			a.log.Warn("cannot create the agent's session; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		a.mu.Lock()
		a.session, a.lease = sess, l
		a.mu.Unlock()
		a.publish(ctx)

		cctx, cancel := context.WithCancel(ctx)
		go a.campaign(cctx, sess)
		if err := l.keepAlive(cctx); ctx.Err() == nil {
			a.log.Warn("the agent's lease was lost; its status is withdrawn until a new lease is granted", "err", err)
		}
		cancel()
		a.mu.Lock()
		if a.session == sess {
			a.session = nil
		}
		a.coordinator, a.election = false, nil
		a.mu.Unlock()
	}
}

// campaign waits to become the coordinator; the role lasts as long as sess.
func (a *Agent) campaign(ctx context.Context, sess *concurrency.Session) {
	el := concurrency.NewElection(sess, a.store.ElectionPrefix())
	if err := el.Campaign(ctx, a.self); err != nil {
		return
	}
	a.log.Info("this agent is now the membership coordinator")
	a.mu.Lock()
	a.coordinator, a.election = true, el
	a.mu.Unlock()
}

// publishLoop observes the local database (and the primary's, from
// other nodes) every local.period, or at once when woken, and publishes.
func (a *Agent) publishLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.LocalPeriod)
	defer t.Stop()
	for {
		a.publish(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.publishKick:
		}
	}
}

func (a *Agent) publish(ctx context.Context) {
	a.publishMu.Lock()
	defer a.publishMu.Unlock()
	obs := a.observeLocal(ctx)
	rec, _ := a.currentPrimary()
	st := describe(a.cfg, a.self, a.bind, a.adminURL, obs, time.Now().UTC(), a.startedAt)
	st.Epoch = rec.Epoch
	if c, ok := a.vipConfig(); ok {
		st.VIP, st.VIPHeld = c.Address.String(), a.vipHeld()
	}
	st.PostmasterGone = !obs.Up && a.postmasterGone()
	if st.PostmasterGone && a.wantPrimary() {
		a.restartLocally(ctx)
	} else if obs.Up {
		a.mu.Lock()
		a.restartTried = false
		a.mu.Unlock()
	}
	a.trackIdle(ctx, obs)
	if rec.Node != "" && rec.Node != a.self {
		pobs := a.observe(ctx, rec.Node, a.cfg.DB.Port, a.cfg.RemoteTimeout)
		st.PrimaryProbe = &cluster.RemoteProbe{Node: rec.Node, DB: pobs, At: time.Now().UTC()}
	}
	a.mu.Lock()
	if a.idle != nil {
		st.Type, st.IdleReason = cluster.Idle, a.idle.Reason
	}
	if a.rejoinReason != "" && st.Type != cluster.Witness {
		st.Type, st.IdleReason = cluster.Idle, a.rejoinReason
	}
	if time.Now().Before(a.restartingUntil) {
		st.RestartingUntil = a.restartingUntil
		st.PostmasterGone = false
	}
	prev := a.status
	a.status = st
	sess := a.session
	a.mu.Unlock()
	if prev.Type != st.Type {
		a.log.Info("node type", "type", st.Type, "was", prev.Type, "reason", st.IdleReason)
		a.wake(a.roleKick)
	}
	if sess == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, max(a.cfg.LocalPeriod, time.Second))
	defer cancel()
	if err := a.store.PublishStatus(pctx, sess.Lease(), st); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot publish status", "err", err)
		return
	}
	a.recordPrimaryLSN(pctx, st)
}

// recordPrimaryLSN keeps the primary record's last known WAL position
// current, so a failover can refuse standbys that never caught up.
func (a *Agent) recordPrimaryLSN(ctx context.Context, st cluster.MemberStatus) {
	rec, rev := a.currentPrimary()
	if rec.Node != a.self || rec.Phase != dcs.PhasePromoted || st.Type != cluster.Primary || st.DB.CurrentLSN <= rec.LastLSN {
		return
	}
	rec.LastLSN, rec.Timeline = st.DB.CurrentLSN, st.DB.Timeline
	// A lost race (the record moved on) is fine: the next publish retries.
	_, _ = a.store.UpdatePrimary(ctx, rev, rec)
}

// watchLoop follows membership (to keep .nodes current and to learn of our
// own removal) and cluster-wide requests (stop-cluster).
func (a *Agent) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		r, err := a.cli.Get(ctx, a.store.NodesPrefix(), clientv3.WithPrefix())
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		a.rewriteNodesFile(ctx)
		// A stop request made while no watch ran is found here.
		if sr, err := a.cli.Get(ctx, a.store.StopKey()); err == nil && len(sr.Kvs) > 0 && sr.Kvs[0].ModRevision > a.startRev {
			a.fail(ErrStopCluster)
			return
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		nodes := a.cli.Watch(wctx, a.store.NodesPrefix(), clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
		stop := a.cli.Watch(wctx, a.store.StopKey(), clientv3.WithRev(r.Header.Revision+1))
		a.followEvents(ctx, nodes, stop)
		cancel()
		sleep(ctx, 200*time.Millisecond)
	}
}

// followEvents handles watch events until a channel closes (compaction, lost
// leader): the caller then re-reads and watches again.
func (a *Agent) followEvents(ctx context.Context, nodes, stop clientv3.WatchChan) {
	own := a.store.NodeKey(a.self)
	for {
		select {
		case <-ctx.Done():
			return
		case w, ok := <-nodes:
			if !ok || w.Err() != nil {
				return
			}
			for _, ev := range w.Events {
				if ev.Type == clientv3.EventTypeDelete && string(ev.Kv.Key) == own {
					a.fail(fmt.Errorf("%w: node %s was removed from cluster %q (disallow-node); its consensus data is deleted: to rejoin, run `pgfm allow-node %s %s` on a member and start this agent again",
						ErrRemoved, a.self, a.cfg.Cluster, a.cfg.Cluster, a.self))
					return
				}
			}
			a.rewriteNodesFile(ctx)
		case w, ok := <-stop:
			if !ok || w.Err() != nil {
				return
			}
			for _, ev := range w.Events {
				if ev.Type == clientv3.EventTypePut {
					a.fail(ErrStopCluster)
					return
				}
			}
		}
	}
}

// rewriteNodesFile writes every member's bind.address to .nodes, so a
// restarted agent always finds a live member (EFM keeps it the same way).
func (a *Agent) rewriteNodesFile(ctx context.Context) {
	if a.cfg.StableNodesFile {
		return
	}
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return
	}
	var addrs []netip.AddrPort
	for _, reg := range snap.Registrations {
		if ap, err := netip.ParseAddrPort(reg.BindAddr); err == nil {
			addrs = append(addrs, ap)
		}
	}
	if len(addrs) == 0 {
		return
	}
	slices.SortFunc(addrs, netip.AddrPort.Compare)
	cur, _ := config.ReadNodes(a.cfg.NodesFile)
	slices.SortFunc(cur, netip.AddrPort.Compare)
	if slices.Equal(cur, addrs) {
		return
	}
	if err := config.WriteNodes(a.cfg.NodesFile, addrs); err != nil {
		a.log.Warn("cannot rewrite the .nodes file", "file", a.cfg.NodesFile, "err", err)
		return
	}
	a.log.Info("rewrote the .nodes file", "file", a.cfg.NodesFile, "members", len(addrs))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
