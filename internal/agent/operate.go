package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/decide"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// Operator commands that change who is primary or how the cluster
// chooses: promote (and switchover), set-priority and maintenance mode.

// Promote commits an operator's promote or switchover, decided by
// decide.Manual on a fresh snapshot, and waits for its outcome. The commit
// is guarded by the primary record's revision, as the coordinator's are,
// so it cannot race a failover: one of them commits, the other is refused.
func (a *Agent) Promote(ctx context.Context, req httpapi.PromoteRequest) (httpapi.PromoteResult, error) {
	if !a.isReady() {
		return httpapi.PromoteResult{}, a.notReady()
	}
	target := ""
	if req.Target != "" {
		ip, err := parseNodeAddress(req.Target)
		if err != nil {
			return httpapi.PromoteResult{}, err
		}
		target = ip
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout+3*time.Second)
	defer cancel()
	f, err := a.commitManual(cctx, req, target)
	if err != nil {
		return httpapi.PromoteResult{}, err
	}
	a.log.Warn(opName(req.Switchover)+" committed", "from", f.From, "to", f.To, "epoch", f.NewEpoch)
	if !req.Quiet {
		a.notify(ctx, hook.Warning, "Manual "+opName(req.Switchover), fmt.Sprintf("%s requested on %s: %s replaces %s (epoch %d).", opName(req.Switchover), a.self, f.To, f.From, f.NewEpoch))
	}
	return a.awaitOperation(ctx, f, start), nil
}

// commitManual decides and commits on a fresh snapshot. A running
// primary moves its record's LastLSN forward all the time, which fails the
// revision guard without changing anything that matters: that is retried
// on a new snapshot; a new epoch is not.
func (a *Agent) commitManual(ctx context.Context, req httpapi.PromoteRequest, target string) (decide.Failover, error) {
	name := opName(req.Switchover)
	var epoch uint64
	for {
		snap, err := a.store.Snapshot(ctx)
		if err != nil {
			return decide.Failover{}, httpapi.Errorf(http.StatusServiceUnavailable, "cannot read the cluster state: %v", err)
		}
		if epoch != 0 && snap.Primary.Epoch != epoch {
			return decide.Failover{}, httpapi.Errorf(http.StatusConflict,
				"%s not committed: epoch %d named %s meanwhile (a failover or another operation); check cluster-status and try again", name, snap.Primary.Epoch, snap.Primary.Node)
		}
		epoch = snap.Primary.Epoch
		if req.Switchover || a.syncMode() {
			// Published statuses may be a local.period old: a standby whose
			// WAL receiver stopped since must not be chosen, and in
			// synchronous mode the positions must be newer than the last
			// acknowledged write.
			a.observeDatabases(ctx, &snap)
		}
		f, err := decide.Manual(a.view(snap, a.voters(ctx)), decide.Request{Switchover: req.Switchover, Target: target, Force: req.Force})
		if err != nil {
			if a.syncMode() && strings.Contains(err.Error(), "synchronous mode") {
				err = fmt.Errorf("%w; promote -force promotes one anyway, losing the acknowledged writes it lacks", err)
			}
			return f, httpapi.Errorf(http.StatusConflict, "%s refused: %v", name, err)
		}
		if req.Force && a.syncMode() {
			f.Reason += ", forced past the synchronous set: acknowledged writes may be lost"
		}
		next := dcs.Primary{
			Node: f.To, Epoch: f.NewEpoch, Phase: dcs.PhasePromoting, Previous: f.From,
			Reason: f.Reason + ", requested on " + a.self, Since: time.Now().UTC(),
			LastLSN: snap.Primary.LastLSN, Timeline: snap.Primary.Timeline,
			Switchover: f.Switchover, NoScripts: req.NoScripts,
		}
		ok, err := a.store.UpdatePrimaryAndSync(ctx, snap.PrimaryRev, next, a.newEpochSync(next))
		if err != nil {
			return f, httpapi.Errorf(http.StatusServiceUnavailable, "%s not committed: %v", name, err)
		}
		if ok {
			return f, nil
		}
	}
}

// observeDatabases replaces the published observation of every node's
// database in snap with one made now, all at once (one slow host costs one
// remote.timeout). A database that does not answer is recorded as down.
func (a *Agent) observeDatabases(ctx context.Context, snap *dcs.Snapshot) {
	a.observeStandbys(ctx, snap, nil)
}

// observeStandbys is observeDatabases for the nodes in only (every node
// when only is nil).
func (a *Agent) observeStandbys(ctx context.Context, snap *dcs.Snapshot, only []string) {
	var addrs []string
	var ports []int
	for _, reg := range snap.Registrations {
		if only != nil && !slices.Contains(only, reg.Address) {
			continue
		}
		if _, ok := snap.Status[reg.Address]; ok && !reg.Witness {
			addrs = append(addrs, reg.Address)
			ports = append(ports, nodeDBPort(reg, *snap, a.cfg.DB.Port))
		}
	}
	obs := make([]cluster.DBObservation, len(addrs))
	var wg sync.WaitGroup
	for i := range addrs {
		wg.Go(func() { obs[i] = a.observe(ctx, addrs[i], ports[i], a.cfg.RemoteTimeout) })
	}
	wg.Wait()
	for i, addr := range addrs {
		st := snap.Status[addr]
		st.DB = obs[i]
		snap.Status[addr] = st
	}
}

func opName(switchover bool) string {
	if switchover {
		return "switchover"
	}
	return "promotion"
}

// voters counts the embedded etcd's voting members (0: unknown, or an
// external etcd), for decide's majority check.
func (a *Agent) voters(ctx context.Context) int {
	if a.members == nil {
		return 0
	}
	list, err := a.members.Members(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range list {
		if !m.IsLearner {
			n++
		}
	}
	return n
}

// awaitOperation follows a committed promote or switchover until it
// completes, fails or httpapi.OperationWait passes, noting when each step
// was seen done. A switchover completes when the old primary streams from
// the new one.
func (a *Agent) awaitOperation(ctx context.Context, f decide.Failover, start time.Time) httpapi.PromoteResult {
	res := httpapi.PromoteResult{Switchover: f.Switchover, From: f.From, To: f.To, Epoch: f.NewEpoch}
	seen := map[string]bool{}
	step := func(name string) {
		if !seen[name] {
			seen[name] = true
			now := time.Now()
			res.Steps = append(res.Steps, httpapi.Step{Name: name, At: now.UTC(), After: httpapi.Duration(now.Sub(start))})
		}
	}
	step("committed")
	deadline := time.Now().Add(httpapi.OperationWait)
	for {
		snap, err := a.store.Snapshot(ctx)
		if err == nil {
			old, oldLive := snap.Status[f.From]
			if !oldLive || !old.DB.Up {
				step("old primary stopped")
			}
			rec := snap.Primary
			switch {
			case rec.Epoch > f.NewEpoch:
				res.Outcome = fmt.Sprintf("superseded: epoch %d named %s meanwhile: %s", rec.Epoch, rec.Node, rec.Reason)
				return res
			case rec.Epoch == f.NewEpoch && (rec.Phase == dcs.PhaseFenceFailed || rec.Phase == dcs.PhasePromoteFailed):
				res.Outcome = fmt.Sprintf("failed: %s: %s", rec.Phase, rec.Detail)
				return res
			case rec.Epoch == f.NewEpoch && rec.Phase == dcs.PhasePromoted:
				step("promoted")
				if !f.Switchover {
					res.Done, res.Outcome = true, fmt.Sprintf("%s is the primary (epoch %d)", f.To, f.NewEpoch)
					return res
				}
				if oldLive && old.DB.Up && old.DB.InRecovery && old.DB.WalReceiver == "streaming" && old.DB.SenderHost == f.To {
					step("old primary streaming")
					res.Done, res.Outcome = true, fmt.Sprintf("%s is the primary (epoch %d); %s streams from it", f.To, f.NewEpoch, f.From)
					return res
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			res.Outcome = fmt.Sprintf("still under way after %s; follow it with cluster-status", httpapi.OperationWait)
			return res
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// SetPriority records a node's failover priority (EFM's set-priority): 1
// is promoted first, 0 never, and any value above 0 makes a node with
// promotable=false promotable.
func (a *Agent) SetPriority(ctx context.Context, addr string, priority int) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	ip, err := parseNodeAddress(addr)
	if err != nil {
		return "", err
	}
	if priority < 0 {
		return "", httpapi.Errorf(http.StatusBadRequest, "priority %d: give 0 (never promoted) or a positive number (1 is promoted first)", priority)
	}
	reg, ok, err := a.store.Registration(ctx, ip)
	switch {
	case err != nil:
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	case !ok:
		return "", httpapi.Errorf(http.StatusNotFound, "%s is no member of cluster %s; see cluster-status for its nodes", ip, a.cfg.Cluster)
	case reg.Witness:
		return "", httpapi.Errorf(http.StatusBadRequest, "%s is a witness: it has no database to promote", ip)
	}
	if err := a.store.SetPriority(ctx, ip, priority); err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	a.log.Info("failover priority set", "address", ip, "priority", priority)
	if priority == 0 {
		return fmt.Sprintf("Node %s will not be promoted (priority 0).", ip), nil
	}
	return fmt.Sprintf("Failover priority of %s is %d (1 is promoted first).", ip, priority), nil
}

// SetMaintenance turns maintenance mode on or off for the whole cluster.
func (a *Agent) SetMaintenance(ctx context.Context, on bool) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	var mark *dcs.Maintenance
	if on {
		mark = &dcs.Maintenance{Since: time.Now().UTC(), By: a.self}
	}
	if err := a.store.SetMaintenance(ctx, mark); err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	if on {
		a.log.Warn("maintenance mode on: no automatic failover, no local restart")
		a.notify(ctx, hook.Warning, "Maintenance mode on", fmt.Sprintf("Turned on from %s: no automatic failover and no local restart until `pgfm maintenance %s off`.", a.self, a.cfg.Cluster))
		return fmt.Sprintf("Cluster %s is in maintenance mode: no automatic failover and no local restart until `pgfm maintenance %s off`.", a.cfg.Cluster, a.cfg.Cluster), nil
	}
	a.log.Info("maintenance mode off")
	a.notify(ctx, hook.Info, "Maintenance mode off", fmt.Sprintf("Turned off from %s: automatic failover resumes.", a.self))
	a.wake(a.coordKick)
	return fmt.Sprintf("Cluster %s is out of maintenance mode: automatic failover resumes.", a.cfg.Cluster), nil
}

// ResetMembers removes the members whose agents are down from the cluster
// (EFM 5's reset-members): their etcd members, registrations and allowed
// entries, as disallow-node does one by one, and the allowed entries of
// nodes that never joined. Every agent then rewrites its .nodes file. It
// refuses without a majority of live voters, and for the node the primary
// record names (fail over first).
func (a *Agent) ResetMembers(ctx context.Context) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	if a.member == nil {
		return "", httpapi.Errorf(http.StatusBadRequest,
			"with an external etcd (dcs.endpoints) its owner manages its members; remove a node with `pgfm disallow-node %s ADDRESS`", a.cfg.Cluster)
	}
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "cannot read the cluster state: %v", err)
	}
	var down []string
	for _, reg := range snap.Registrations {
		if _, live := snap.Status[reg.Address]; !live && reg.Address != a.self {
			down = append(down, reg.Address)
		}
	}
	voters, live := a.voters(ctx), len(snap.Status)
	if need := voters/2 + 1; voters > 0 && live < need {
		return "", httpapi.Errorf(http.StatusConflict, "only %d of %d voting members are live, %d needed: removing members needs a majority; start the down agents instead", live, voters, need)
	}
	for _, addr := range down {
		if addr == snap.Primary.Node {
			return "", httpapi.Errorf(http.StatusConflict, "%s, the cluster's primary, is down: fail over first (`pgfm promote %s`), then reset the members", addr, a.cfg.Cluster)
		}
	}
	var removed []string
	for _, addr := range down {
		if _, err := a.Disallow(ctx, addr); err != nil {
			return "", httpapi.Errorf(http.StatusServiceUnavailable, "removed %v; removing %s failed: %v", removed, addr, err)
		}
		removed = append(removed, addr)
	}
	registered := map[string]bool{}
	for _, reg := range snap.Registrations {
		registered[reg.Address] = true
	}
	// etcd members of joins that stopped halfway: no registration.
	halfJoined, err := a.removeUnregisteredMembers(ctx, registered)
	if err != nil {
		return "", err
	}
	removed = append(removed, halfJoined...)
	var unjoined []string
	for _, al := range snap.Allowed {
		if !registered[al.Address] {
			if _, err := a.store.Disallow(ctx, al.Address); err != nil {
				return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
			}
			unjoined = append(unjoined, al.Address)
		}
	}
	a.log.Warn("reset members", "removed", removed, "unjoined_disallowed", unjoined)
	if len(removed) == 0 && len(unjoined) == 0 {
		return fmt.Sprintf("Every member of cluster %s is up: nothing to remove.", a.cfg.Cluster), nil
	}
	msg := fmt.Sprintf("Removed from cluster %s: %s.", a.cfg.Cluster, strings.Join(removed, ", "))
	if len(removed) == 0 {
		msg = fmt.Sprintf("No member of cluster %s is down.", a.cfg.Cluster)
	}
	if len(unjoined) > 0 {
		msg += fmt.Sprintf(" No longer allowed (never joined): %s.", strings.Join(unjoined, " "))
	}
	return msg + " Allow a removed node again with allow-node before it rejoins.", nil
}

// removeUnregisteredMembers removes the etcd members that belong to no
// registered node: joins that stopped before the joiner registered.
func (a *Agent) removeUnregisteredMembers(ctx context.Context, registered map[string]bool) ([]string, error) {
	list, err := a.members.Members(ctx)
	if err != nil {
		return nil, httpapi.Errorf(http.StatusServiceUnavailable, "cannot list members: %v", err)
	}
	var removed []string
	for _, m := range list {
		ip := ""
		for _, u := range m.PeerURLs {
			if ap, err := netip.ParseAddrPort(trimScheme(u)); err == nil {
				ip = ap.Addr().Unmap().String()
			}
		}
		if ip == "" || registered[ip] || ip == a.self {
			continue
		}
		if err := retryUnhealthy(ctx, func(ctx context.Context) error { return a.members.RemoveMember(ctx, m.ID) }); err != nil {
			return removed, httpapi.Errorf(http.StatusServiceUnavailable, "cannot remove the etcd member of %s: %v", ip, err)
		}
		removed = append(removed, ip+" (a join that never completed)")
	}
	return removed, nil
}
