package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// Admit handles a join request: the cluster name must match, the address
// must be allowed (or auto.allow.hosts on), and the request must come from
// the address it names. The node is added as an etcd learner, promoted
// once it has caught up.
func (a *Agent) Admit(ctx context.Context, req httpapi.JoinRequest, remoteIP string) (httpapi.JoinResponse, error) {
	var resp httpapi.JoinResponse
	if !a.isReady() {
		return resp, httpapi.Errorf(http.StatusServiceUnavailable, "agent %s is starting; try again shortly", a.self)
	}
	if a.member == nil {
		return resp, httpapi.Errorf(http.StatusConflict,
			"cluster %q uses an external etcd (dcs.endpoints): there is no member to join through; set the same dcs.endpoints in the joining node's %s.properties and start its agent",
			a.cfg.Cluster, a.cfg.Cluster)
	}
	if req.Cluster != a.cfg.Cluster {
		return resp, httpapi.Errorf(http.StatusConflict,
			"%s is an agent of cluster %q, not %q: the joining node's .nodes file lists a member of another cluster; correct it",
			a.self, a.cfg.Cluster, req.Cluster)
	}
	bind, err := netip.ParseAddrPort(req.BindAddress)
	if err != nil || bind.Addr().String() != req.Address {
		return resp, httpapi.Errorf(http.StatusBadRequest, "join request: bind address %q does not match address %q", req.BindAddress, req.Address)
	}
	if from, err := netip.ParseAddr(remoteIP); err != nil || from.Unmap().String() != req.Address {
		return resp, httpapi.Errorf(http.StatusForbidden,
			"join request for %s came from %s: an agent must join from its own bind.address", req.Address, remoteIP)
	}
	allowed, err := a.store.IsAllowed(ctx, req.Address)
	if err != nil {
		return resp, httpapi.Errorf(http.StatusServiceUnavailable, "cannot read the allowed node list: %v", err)
	}
	if !allowed {
		if !a.cfg.AutoAllowHosts {
			return resp, httpapi.Errorf(http.StatusForbidden,
				"address %s is not on the allowed node host list of cluster %q: run `pgfm allow-node %s %s` on a running member, then start this agent again",
				req.Address, a.cfg.Cluster, a.cfg.Cluster, req.Address)
		}
		if err := a.store.Allow(ctx, req.Address, a.self+" (auto.allow.hosts)"); err != nil {
			return resp, httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
		}
		a.log.Info("allowed a joining node (auto.allow.hosts=true)", "address", req.Address)
	}
	info, err := a.store.Info(ctx)
	if err != nil {
		return resp, httpapi.Errorf(http.StatusServiceUnavailable, "%v", err)
	}

	a.joinMu.Lock()
	defer a.joinMu.Unlock()
	id, members, err := a.addLearner(ctx, "https://"+req.BindAddress)
	if err != nil {
		return resp, err
	}
	var parts []string
	for _, m := range members {
		name := m.Name
		if m.ID == id {
			name = req.BindAddress
		}
		if name == "" || len(m.PeerURLs) == 0 {
			continue // another member that has not started yet
		}
		parts = append(parts, name+"="+m.PeerURLs[0])
	}
	a.log.Info("admitted a node as a learner", "address", req.Address, "member_id", fmt.Sprintf("%x", id))
	go a.promoteWhenReady(id)
	return httpapi.JoinResponse{Token: info.Token, InitialCluster: strings.Join(parts, ","), MemberID: id}, nil
}

// addLearner adds peerURL as a learner, reusing a learner added for the
// same URL by an earlier attempt (or replacing one that started); a voting
// member of that URL is never replaced.
func (a *Agent) addLearner(ctx context.Context, peerURL string) (uint64, []dcs.Member, error) {
	list, err := a.members.Members(ctx)
	if err != nil {
		return 0, nil, httpapi.Errorf(http.StatusServiceUnavailable, "cannot list members: %v", err)
	}
	for _, m := range list {
		same := slices.Contains(m.PeerURLs, peerURL)
		switch {
		case same && m.IsLearner && m.Name == "":
			return m.ID, list, nil
		case same && m.IsLearner:
			// A learner that never started serving: the joiner's earlier
			// attempt, which a new one replaces. No vote is lost.
			a.log.Warn("replacing the learner of an earlier join attempt", "peer", peerURL)
			if err := retryUnhealthy(ctx, func(ctx context.Context) error {
				return a.members.RemoveMember(ctx, m.ID)
			}); err != nil {
				return 0, nil, httpapi.Errorf(http.StatusServiceUnavailable, "cannot remove the old learner of %s: %v", peerURL, err)
			}
		case same:
			// A join never removes a voter: whoever can reach this port
			// from that address would otherwise take a vote away.
			addr := strings.TrimPrefix(peerURL, "https://")
			ip := addr
			if ap, err := netip.ParseAddrPort(addr); err == nil {
				ip = ap.Addr().String()
			}
			return 0, nil, httpapi.Errorf(http.StatusConflict,
				"%s is already a voting member of cluster %q; a node that lost its state.dir must be removed first: run `pgfm disallow-node %s %s` "+
					"and `pgfm allow-node %s %s` on a running member, then start its agent again",
				addr, a.cfg.Cluster, a.cfg.Cluster, ip, a.cfg.Cluster, ip)
		case m.IsLearner:
			return 0, nil, httpapi.Errorf(http.StatusServiceUnavailable, "another node (%s) is joining; try again shortly", strings.Join(m.PeerURLs, ","))
		}
	}
	var id uint64
	var members []dcs.Member
	err = retryUnhealthy(ctx, func(ctx context.Context) (err error) {
		id, members, err = a.members.AddLearner(ctx, peerURL)
		return err
	})
	if err != nil {
		return 0, nil, httpapi.Errorf(http.StatusServiceUnavailable, "cannot add member %s: %v", peerURL, err)
	}
	return id, members, nil
}

// retryUnhealthy retries a membership change that etcd refuses for a few
// seconds after members (re)connect (DESIGN.md §2).
func retryUnhealthy(ctx context.Context, f func(context.Context) error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "unhealthy") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// promoteWhenReady promotes a learner as soon as etcd says it has caught
// up; the coordinator also promotes stragglers, so giving up is safe.
func (a *Agent) promoteWhenReady(id uint64) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && a.isReady() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := a.members.PromoteMember(ctx, id)
		cancel()
		if err == nil {
			a.log.Info("promoted a learner to voter", "member_id", fmt.Sprintf("%x", id))
			return
		}
		// Already promoted (e.g. by the coordinator) or gone: done.
		if msg := err.Error(); strings.Contains(msg, "can only promote a learner") ||
			strings.Contains(msg, "not a learner") || strings.Contains(msg, "member not found") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (a *Agent) isReady() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready
}
