package agent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/node"
)

// sessionLoop keeps a lease of node.timeout (the agent's liveness, under
// which its status lives) and campaigns for coordinator with it. A lost
// lease (e.g. cut off from the majority) is replaced by a new one.
func (a *Agent) sessionLoop(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := a.store.GrantLease(ctx, a.cfg.NodeTimeout, a.self)
		if err != nil {
			a.log.Warn("cannot create the agent's lease; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if l.TTL() > a.cfg.NodeTimeout.Round(time.Second) {
			a.log.Warn("etcd granted a longer lease than node.timeout", "node_timeout", a.cfg.NodeTimeout, "granted", l.TTL())
		}
		a.mu.Lock()
		a.live, a.lease = l, l
		a.mu.Unlock()
		a.publish(ctx)

		cctx, cancel := context.WithCancel(ctx)
		go a.campaign(cctx, l)
		if err := l.KeepAlive(cctx); ctx.Err() == nil {
			a.log.Warn("the agent's lease was lost; its status is withdrawn until a new lease is granted", "err", err)
		}
		cancel()
		a.mu.Lock()
		if a.live == l {
			a.live = nil
		}
		a.coordinator, a.election = false, nil
		a.mu.Unlock()
	}
}

// campaign waits to become the coordinator; the role lasts as long as sess.
func (a *Agent) campaign(ctx context.Context, l *dcs.Lease) {
	var el *dcs.Election
	for {
		var err error
		if el, err = a.store.Campaign(ctx, l, a.self); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("coordinator campaign failed; campaigning again", "err", err)
		sleep(ctx, time.Second)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The session loop cancels ctx before it clears the role under a.mu: a
	// win that lands after that must not set it again.
	if ctx.Err() != nil {
		return
	}
	a.coordinator, a.election = true, el
	a.log.Info("this agent is now the membership coordinator")
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
	if !obs.Up && !a.cfg.IsWitness && !a.postmasterGone() {
		// A check that failed while a postmaster runs is tried once more
		// (EFM's local.timeout.final) before it counts: a timeout may be
		// this agent's own stall (a paused VM, a frozen process) rather
		// than the database's, and a failure makes the agent idle.
		obs = a.observe(ctx, a.self, a.cfg.DB.Port, a.cfg.LocalTimeoutFinal)
	}
	rec, _ := a.currentPrimary()
	st := describe(a.cfg, a.self, a.bind, a.adminURL, obs, time.Now().UTC(), a.startedAt)
	st.Epoch = rec.Epoch
	st.Demoted = a.demotion(rec.Epoch)
	if c, ok := a.vipConfig(); ok {
		st.VIP, st.VIPHeld = c.Address.String(), a.exec.vipHeld()
	}
	st.PostmasterGone = !obs.Up && a.postmasterGone()
	if st.PostmasterGone && !a.cfg.IsWitness {
		// Decided before the crash is published: a local restart holds
		// the failover back (primary.restart.timeout).
		in := a.nodeInput(obs, true)
		in.Settings.Maintenance = a.inMaintenance(ctx)
		a.act(ctx, node.Step(in, time.Now()), func(act node.Action) bool {
			_, restart := act.(node.RestartLocally)
			return restart
		})
	} else if obs.Up {
		a.mu.Lock()
		a.restartTried = false
		a.mu.Unlock()
	}
	switch {
	case a.busyRebuilding():
		// A rebuild or create-standby stopped the database on purpose.
	case !obs.Up && rec.Switchover && a.stoppedForSwitchover(rec.Epoch):
		// Stopped on purpose: no failure, and it starts again by itself.
		st.IdleReason = fmt.Sprintf("database stopped for the switchover to %s (epoch %d); it starts as its standby once %s is promoted", rec.Node, rec.Epoch, rec.Node)
	case !obs.Up && a.switchoverAborted(rec):
		st.IdleReason = fmt.Sprintf("database stopped for a switchover that was aborted; it starts and is promoted back (epoch %d)", rec.Epoch)
	case !obs.Up && a.startingOnPurpose():
		st.IdleReason = "database starting again"
	default:
		a.trackIdle(ctx, obs)
	}
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
	if a.createFailed != "" && !obs.Up {
		st.Type, st.IdleReason = cluster.Idle, a.createFailed
	}
	if a.rebuilding != "" {
		st.Type, st.IdleReason = cluster.Idle, a.rebuilding
	}
	if st.Type == cluster.Primary && len(a.sync.states) > 0 {
		st.SyncStates = maps.Clone(a.sync.states)
	}
	if time.Now().Before(a.restartingUntil) {
		st.RestartingUntil = a.restartingUntil
		st.PostmasterGone = false
	}
	prev := a.status
	a.status = st
	live := a.live
	a.mu.Unlock()
	if prev.Type != st.Type {
		a.log.Info("node type", "type", st.Type, "was", prev.Type, "reason", st.IdleReason)
		a.wake(a.roleKick)
	}
	if live == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, max(a.cfg.LocalPeriod, time.Second))
	defer cancel()
	if err := a.store.PublishStatus(pctx, live, st); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot publish status", "err", err)
		return
	}
	a.recordPrimaryLSN(pctx, st)
}

// inMaintenance reads maintenance mode; when etcd cannot say, it answers
// on, so that no restart happens against an operator's wish.
func (a *Agent) inMaintenance(ctx context.Context) bool {
	mctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout)
	defer cancel()
	m, err := a.store.Maintenance(mctx)
	return m != nil || err != nil
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
		done := false
		err := a.store.WatchMembership(ctx, a.startRev, dcs.MembershipEvents{
			Changed: func(removed []string) {
				if slices.Contains(removed, a.self) {
					a.fail(fmt.Errorf("%w: node %s was removed from cluster %q (disallow-node); its consensus data is deleted: to rejoin, run `pgfm allow-node %s %s` on a member and start this agent again",
						ErrRemoved, a.self, a.cfg.Cluster, a.cfg.Cluster, a.self))
					return
				}
				a.rewriteNodesFile(ctx)
			},
			Stop: func() { done = true; a.fail(ErrStopCluster) },
		})
		if done {
			return
		}
		if err != nil && ctx.Err() == nil {
			a.log.Debug("membership watch ended; watching again", "err", err)
		}
		sleep(ctx, 200*time.Millisecond)
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
