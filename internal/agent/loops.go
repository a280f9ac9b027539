package agent

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pgfm/pgfm/internal/config"
)

// sessionLoop keeps a lease of node.timeout (the agent's liveness, under
// which its status lives) and campaigns for coordinator with it. A lost
// lease (e.g. cut off from the majority) is replaced by a new one.
func (a *Agent) sessionLoop(ctx context.Context) {
	ttl := int(math.Ceil(a.cfg.NodeTimeout.Seconds()))
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(a.cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			a.log.Warn("cannot create the agent's lease; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		a.checkTTL(ctx, sess, ttl)
		a.mu.Lock()
		a.session = sess
		a.mu.Unlock()
		a.publish(ctx)

		el := concurrency.NewElection(sess, a.store.ElectionPrefix())
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			if err := el.Campaign(cctx, a.self); err != nil {
				return
			}
			a.log.Info("this agent is now the membership coordinator")
			a.mu.Lock()
			a.coordinator = true
			a.mu.Unlock()
		}()
		select {
		case <-ctx.Done():
		case <-sess.Done():
			a.log.Warn("the agent's lease expired; its status was withdrawn until a new lease is granted")
		}
		cancel()
		a.mu.Lock()
		if a.session == sess {
			a.session = nil
		}
		a.coordinator = false
		a.mu.Unlock()
	}
}

// checkTTL warns when etcd raised the lease TTL (it never grants less than
// 1.5 × its election timeout): node.timeout would then not hold.
func (a *Agent) checkTTL(ctx context.Context, sess *concurrency.Session, want int) {
	r, err := a.cli.TimeToLive(ctx, sess.Lease())
	if err == nil && r.GrantedTTL > int64(want) {
		a.log.Warn("etcd granted a longer lease than node.timeout", "node_timeout_s", want, "granted_s", r.GrantedTTL)
	}
}

// publishLoop observes the local database every local.period and
// publishes the result.
func (a *Agent) publishLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.LocalPeriod)
	defer t.Stop()
	for {
		a.publish(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) publish(ctx context.Context) {
	var obs = a.observeLocal(ctx)
	st := describe(a.cfg, a.self, a.bind, a.adminURL, obs, time.Now().UTC(), a.startedAt)
	a.mu.Lock()
	prev := a.status
	a.status = st
	sess := a.session
	a.mu.Unlock()
	if prev.Type != st.Type {
		a.log.Info("node type", "type", st.Type, "was", prev.Type, "reason", st.IdleReason)
	}
	if sess == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, max(a.cfg.LocalPeriod, time.Second))
	defer cancel()
	if err := a.store.PublishStatus(pctx, sess.Lease(), st); err != nil && ctx.Err() == nil {
		a.log.Warn("cannot publish status", "err", err)
	}
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
		a.follow(ctx, nodes, stop)
		cancel()
		sleep(ctx, 200*time.Millisecond)
	}
}

// follow handles watch events until a channel closes (compaction, lost
// leader): the caller then re-reads and watches again.
func (a *Agent) follow(ctx context.Context, nodes, stop clientv3.WatchChan) {
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

// coordinatorLoop does the coordinator's housekeeping: promote learners
// whose admitting agent went away before promoting them.
func (a *Agent) coordinatorLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		coord := a.coordinator
		a.mu.Unlock()
		if !coord {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		list, err := a.cli.MemberList(lctx)
		if err == nil {
			for _, m := range list.Members {
				if m.IsLearner && m.Name != "" {
					if _, err := a.cli.MemberPromote(lctx, m.ID); err == nil {
						a.log.Info("promoted a learner to voter", "member", m.Name)
					} else if !strings.Contains(err.Error(), "not in sync") {
						a.log.Debug("cannot promote learner yet", "member", m.Name, "err", err)
					}
				}
			}
		}
		cancel()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
