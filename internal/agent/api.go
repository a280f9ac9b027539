package agent

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/httpapi"
)

func (a *Agent) notReady() error {
	return httpapi.Errorf(http.StatusServiceUnavailable,
		"the agent on %s is waiting for the cluster's consensus (a majority of members must run); see its log", a.self)
}

// Health is the local view for load balancers (health.go); it never waits
// on etcd or the database.
func (a *Agent) Health() httpapi.Health { return a.health(time.Now()) }

// NodeStatus is what this agent last observed and published.
func (a *Agent) NodeStatus(ctx context.Context) (cluster.MemberStatus, error) {
	if !a.isReady() {
		return cluster.MemberStatus{}, a.notReady()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status, nil
}

// Report describes the whole cluster: the shared state in etcd plus this
// agent's own probe of every database, made now.
func (a *Agent) Report(ctx context.Context) (cluster.Report, error) {
	if !a.isReady() {
		return cluster.Report{}, a.notReady()
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout+3*time.Second)
	defer cancel()
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return cluster.Report{}, httpapi.Errorf(http.StatusServiceUnavailable, "cannot read the cluster state: %v", err)
	}
	coord, err := a.store.Coordinator(ctx)
	if err != nil {
		return cluster.Report{}, httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	rep := cluster.Report{
		Cluster: a.cfg.Cluster, Reporter: a.self, GeneratedAt: time.Now().UTC(),
		Coordinator: coord, MinimumStandbys: a.cfg.MinimumStandbys,
		Allowed: []string{}, FailoverPriority: []string{}, MissingNodes: []string{}, Messages: []string{},
	}
	for _, al := range snap.Allowed {
		rep.Allowed = append(rep.Allowed, al.Address)
	}
	sortAddrs(rep.Allowed)
	rep.Messages = append(rep.Messages, snap.Problems...)
	if snap.PrimaryRev != 0 {
		p := snap.Primary
		rep.Epoch, rep.PrimaryNode, rep.PrimaryPhase = p.Epoch, p.Node, string(p.Phase)
		if p.Phase != dcs.PhasePromoted {
			msg := fmt.Sprintf("Failover to %s (epoch %d, replacing %s): %s. %s", p.Node, p.Epoch, p.Previous, p.Phase, p.Detail)
			if p.Phase != dcs.PhasePromoting {
				msg += fmt.Sprintf(" Way out: `pgfm promote %s` retries with the best standby (-candidate ADDR to choose; -noscripts skips script.fence: only if you fenced %s yourself).", a.cfg.Cluster, p.Previous)
			}
			rep.Messages = append(rep.Messages, msg)
		}
	}
	if a.cfg.VirtualIPSingle {
		rep.Messages = append(rep.Messages, vipMismatch(snap.Status)...)
	}
	rep.Nodes = a.nodeReports(ctx, snap)
	for _, n := range rep.Nodes {
		if n.Agent == cluster.AgentDown {
			rep.MissingNodes = append(rep.MissingNodes, n.Address)
		}
	}
	rep.FailoverPriority = failoverPriority(rep.Nodes, snap.Priorities)
	rep.Priorities = snap.Priorities
	rep.SyncMode = cmp.Or(a.cfg.SyncMode, "off")
	if r := snap.Sync; r != nil {
		rep.Sync = &cluster.SyncReport{Epoch: r.Epoch, Primary: r.Primary, Members: r.Members, Quorum: r.Quorum}
		if r.Quorum == 0 && a.syncMode() {
			rep.Messages = append(rep.Messages, fmt.Sprintf("Synchronous replication suspended: the primary %s acknowledges writes alone (no healthy synchronous standby); no standby can be promoted without losing them.", r.Primary))
		}
	}
	if st, ok := snap.Status[snap.Primary.Node]; ok {
		for i := range rep.Nodes {
			rep.Nodes[i].SyncState = st.SyncStates[rep.Nodes[i].Address]
		}
	}
	if m := snap.Maintenance; m != nil {
		rep.Maintenance = true
		rep.Messages = append(rep.Messages, fmt.Sprintf("Cluster in maintenance mode since %s (turned on from %s): no automatic failover; end it with `pgfm maintenance %s off`.",
			m.Since.Format(time.RFC3339), m.By, a.cfg.Cluster))
	}
	return rep, nil
}

// nodeReports builds one line per registered node. Databases are probed
// primaries first, then the rest at once, so a standby found at or past
// the primary's position really is in sync.
func (a *Agent) nodeReports(ctx context.Context, snap dcs.Snapshot) []cluster.NodeReport {
	nodes := make([]cluster.NodeReport, len(snap.Registrations))
	ports := make([]int, len(snap.Registrations))
	for i, reg := range snap.Registrations {
		// db.port should be the same everywhere (as in EFM), but the
		// node's own word is better than our assumption.
		ports[i] = cmp.Or(reg.DBPort, a.cfg.DB.Port)
		n := cluster.NodeReport{Address: reg.Address, BindAddress: reg.BindAddr, Agent: cluster.AgentDown, DB: cluster.DBUnknown, Type: "Unknown"}
		if reg.Witness {
			n.Type, n.DB = cluster.Witness, cluster.DBNone
		}
		if st, ok := snap.Status[reg.Address]; ok {
			st := st
			n.Published = &st
			ports[i] = cmp.Or(st.DBPort, ports[i])
			n.Type, n.Agent, n.IdleReason = st.Type, cluster.AgentUp, st.IdleReason
			n.VIP, n.VIPActive = st.VIP, st.VIPHeld
			if st.Type == cluster.Idle {
				n.Agent = cluster.AgentIdle
			}
		}
		nodes[i] = n
	}
	probe := func(idx []int) {
		var wg sync.WaitGroup
		for _, i := range idx {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nodes[i].Probe = a.recentProbe(ctx, nodes[i].Address, ports[i])
			}()
		}
		wg.Wait()
	}
	var first, rest []int
	for i, n := range nodes {
		switch {
		case n.Type == cluster.Witness:
		case n.Type == cluster.Primary:
			first = append(first, i)
		default:
			rest = append(rest, i)
		}
	}
	a.probes.round.Lock() // concurrent requests wait and reuse this round
	probe(first)
	probe(rest)
	a.probes.round.Unlock()
	for i := range nodes {
		settleDB(&nodes[i])
	}
	return nodes
}

// probeFresh is how long a status probe of a database serves further
// status requests: a flood of requests opens no more connections to the
// databases than one request a second does.
const probeFresh = time.Second

// recentProbes are the status probes of the last probeFresh, by address
// and port.
type recentProbes struct {
	round sync.Mutex // one probe round at a time
	mu    sync.Mutex
	byAt  map[string]timedObservation
}

type timedObservation struct {
	at  time.Time
	obs cluster.DBObservation
}

// recentProbe observes a node's database for a status report, or reuses
// an observation younger than probeFresh.
func (a *Agent) recentProbe(ctx context.Context, host string, port int) cluster.DBObservation {
	key := net.JoinHostPort(host, strconv.Itoa(port))
	a.probes.mu.Lock()
	t, ok := a.probes.byAt[key]
	a.probes.mu.Unlock()
	if ok && time.Since(t.at) < probeFresh {
		return t.obs
	}
	obs := a.observe(ctx, host, port, a.cfg.RemoteTimeout)
	a.probes.mu.Lock()
	if a.probes.byAt == nil {
		a.probes.byAt = map[string]timedObservation{}
	}
	a.probes.byAt[key] = timedObservation{at: time.Now(), obs: obs}
	a.probes.mu.Unlock()
	return obs
}

// settleDB fills the DB column: the node's own published view when its
// agent runs, else this agent's probe; a node whose agent is down gets its
// type from the probe.
func settleDB(n *cluster.NodeReport) {
	if n.Type == cluster.Witness {
		return
	}
	up := n.Probe.Up
	if n.Published != nil {
		up = n.Published.DB.Up
	}
	n.DB = cluster.DBDown
	if up {
		n.DB = cluster.DBUp
	}
	if n.Published == nil && n.Probe.Up {
		n.Type = cluster.Primary
		if n.Probe.InRecovery {
			n.Type = cluster.Standby
		}
	}
}

// failoverPriority lists the standbys that may be promoted, agents
// running, in the priority order: set-priority values first (1 before 2),
// then the primary's priority.standbys, then by address. set-priority 0
// leaves a node out; above 0 it brings in one with promotable=false.
func failoverPriority(nodes []cluster.NodeReport, set map[string]int) []string {
	var order []string
	var cands []string
	for _, n := range nodes {
		if n.Type == cluster.Primary && n.Published != nil {
			order = n.Published.Priority
		}
		p, hasP := set[n.Address]
		promotable := n.Published != nil && (n.Published.Promotable || p > 0) && !(hasP && p == 0)
		if n.Type == cluster.Standby && n.Agent == cluster.AgentUp && promotable {
			cands = append(cands, n.Address)
		}
	}
	sortAddrs(cands)
	slices.SortStableFunc(cands, func(x, y string) int {
		px, py := set[x], set[y]
		switch {
		case px > 0 && py > 0:
			return px - py
		case px > 0:
			return -1
		case py > 0:
			return 1
		}
		return 0
	})
	out := []string{}
	for _, c := range cands {
		if set[c] > 0 {
			out = append(out, c)
		}
	}
	for _, p := range order {
		if slices.Contains(cands, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, c := range cands {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// sortAddrs sorts IP addresses numerically, anything else after them as text.
func sortAddrs(s []string) {
	slices.SortFunc(s, func(x, y string) int {
		ax, ex := netip.ParseAddr(x)
		ay, ey := netip.ParseAddr(y)
		switch {
		case ex == nil && ey == nil:
			return ax.Compare(ay)
		case ex == nil:
			return -1
		case ey == nil:
			return 1
		}
		return strings.Compare(x, y)
	})
}

// parseNodeAddress accepts a node's IP address (as in bind.address).
func parseNodeAddress(s string) (string, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		if ap, err2 := netip.ParseAddrPort(s); err2 == nil {
			ip = ap.Addr()
		} else {
			return "", httpapi.Errorf(http.StatusBadRequest,
				"%q is not an IP address: give the IP of the node's bind.address, e.g. 192.0.2.12 or 2001:db8::12", s)
		}
	}
	if ip.Zone() != "" || ip.IsUnspecified() {
		return "", httpapi.Errorf(http.StatusBadRequest,
			"%q cannot be a node's address: give the IP of the node's bind.address (no zone, not 0.0.0.0 or ::)", s)
	}
	return ip.Unmap().String(), nil
}

// Allow adds an address to the allowed node host list.
func (a *Agent) Allow(ctx context.Context, addr string) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	ip, err := parseNodeAddress(addr)
	if err != nil {
		return "", err
	}
	if err := a.store.Allow(ctx, ip, a.self); err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	a.log.Info("allowed node", "address", ip)
	return fmt.Sprintf("Address %s is allowed to join cluster %s.", ip, a.cfg.Cluster), nil
}

// Disallow removes a node: from the allowed list, its registration (its
// agent sees that and stops) and its etcd member.
func (a *Agent) Disallow(ctx context.Context, addr string) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	ip, err := parseNodeAddress(addr)
	if err != nil {
		return "", err
	}
	if ip == a.self {
		return "", httpapi.Errorf(http.StatusBadRequest, "a node cannot remove itself: run `pgfm disallow-node %s %s` on another member", a.cfg.Cluster, ip)
	}
	reg, registered, err := a.store.Registration(ctx, ip)
	if err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	removed, err := a.store.Disallow(ctx, ip)
	if err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	memberGone, err := a.removeMember(ctx, ip, reg, registered)
	if err != nil {
		return "", err
	}
	if !removed && !memberGone {
		return "", httpapi.Errorf(http.StatusNotFound, "%s is neither allowed in nor a member of cluster %s", ip, a.cfg.Cluster)
	}
	a.log.Info("disallowed node", "address", ip, "was_member", memberGone)
	if memberGone {
		return fmt.Sprintf("Node %s was removed from cluster %s; its agent stops.", ip, a.cfg.Cluster), nil
	}
	return fmt.Sprintf("Address %s is no longer allowed to join cluster %s.", ip, a.cfg.Cluster), nil
}

// removeMember removes ip's etcd member, after giving its running agent a
// moment to see its registration vanish and leave by itself.
func (a *Agent) removeMember(ctx context.Context, ip string, reg cluster.Registration, registered bool) (bool, error) {
	if a.member == nil {
		// An external etcd: its members are not ours to remove; the
		// deleted registration is the removal.
		return registered, nil
	}
	if registered {
		deadline := time.Now().Add(a.cfg.NodeTimeout)
		for time.Now().Before(deadline) {
			if live, err := a.store.HasStatus(ctx, ip); err == nil && !live {
				break
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}
	list, err := a.members.Members(ctx)
	if err != nil {
		return false, httpapi.Errorf(http.StatusServiceUnavailable, "cannot list members: %v", err)
	}
	for _, m := range list {
		match := registered && m.ID == reg.MemberID
		for _, u := range m.PeerURLs {
			if ap, err := netip.ParseAddrPort(trimScheme(u)); err == nil && ap.Addr().Unmap().String() == ip {
				match = true
			}
		}
		if !match {
			continue
		}
		if err := retryUnhealthy(ctx, func(ctx context.Context) error {
			return a.members.RemoveMember(ctx, m.ID)
		}); err != nil {
			return false, httpapi.Errorf(http.StatusServiceUnavailable, "cannot remove the etcd member of %s: %v; run disallow-node again", ip, err)
		}
		return true, nil
	}
	return registered, nil
}

func trimScheme(u string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(u) > len(p) && u[:len(p)] == p {
			return u[len(p):]
		}
	}
	return u
}

// StopCluster asks every agent to stop; databases keep running.
func (a *Agent) StopCluster(ctx context.Context) (string, error) {
	if !a.isReady() {
		return "", a.notReady()
	}
	if !a.cfg.EnableStopCluster {
		return "", httpapi.Errorf(http.StatusForbidden,
			"stop-cluster is disabled on this node (enable.stop.cluster=false in %s); stop the agents one by one with systemctl stop pgfm@%s",
			a.cfg.PropertiesFile, a.cfg.Cluster)
	}
	if err := a.store.RequestStop(ctx, a.self); err != nil {
		return "", httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	a.log.Info("stop-cluster requested")
	return fmt.Sprintf("Stop requested: every agent of cluster %s stops; the databases keep running.", a.cfg.Cluster), nil
}

// vipMismatch says when database nodes are configured with different
// virtual IPs although virtual.ip.single=true (EFM's default: one address
// that moves to whichever node is primary). Pure, for table tests.
func vipMismatch(statuses map[string]cluster.MemberStatus) []string {
	byVIP := map[string][]string{}
	for addr, st := range statuses {
		if st.VIP != "" {
			byVIP[st.VIP] = append(byVIP[st.VIP], addr)
		}
	}
	if len(byVIP) < 2 {
		return nil
	}
	var parts []string
	for vip, nodes := range byVIP {
		sortAddrs(nodes)
		parts = append(parts, vip+" on "+strings.Join(nodes, ", "))
	}
	slices.Sort(parts)
	return []string{"virtual.ip differs between nodes (" + strings.Join(parts, "; ") +
		") although virtual.ip.single=true: set the same virtual.ip on every node, or virtual.ip.single=false where each node has its own address"}
}
