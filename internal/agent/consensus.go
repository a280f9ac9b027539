package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/etcdmember"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/version"
)

// How long a joining agent keeps trying to reach a member before it gives
// up: long enough for the other agents to restart, short enough that a
// wrong .nodes file is reported.
const joinPatience = 2 * time.Minute

func (a *Agent) memberConfig() etcdmember.Config {
	return etcdmember.Config{
		Name:         a.bind,
		DataDir:      filepath.Join(a.cfg.StateDir, "etcd"),
		PeerURL:      a.peerURL,
		ClientSocket: filepath.Join(a.cfg.StateDir, "etcd.sock"),
		ElectionMs:   uint(a.cfg.ElectionTimeout.Milliseconds()),
		TickMs:       uint(max(a.cfg.ElectionTimeout.Milliseconds()/10, 10)),
	}
}

// startConsensus brings up this node's etcd member: as the same member
// when state.dir has its data, else by joining through .nodes, else (only
// on a primary) by starting a new cluster.
func (a *Agent) startConsensus(ctx context.Context) error {
	if a.cfg.DCS.External() {
		return a.useExternal(ctx)
	}
	mc := a.memberConfig()
	switch peers := a.peers(); {
	case etcdmember.HasData(mc.DataDir):
		a.log.Info("restarting as an existing member", "state_dir", a.cfg.StateDir)
		// etcd reads the membership from its data; these only satisfy
		// its configuration checks.
		mc.State = "existing"
		mc.InitialCluster = a.bind + "=" + a.peerURL.String()
		if err := a.startMember(ctx, mc); err != nil {
			return err
		}
		return a.ensureRegistered(ctx)
	case len(peers) == 0:
		return a.bootstrap(ctx, mc)
	default:
		// A data dir without a WAL is the rest of a failed attempt.
		if err := os.RemoveAll(mc.DataDir); err != nil {
			return fmt.Errorf("state.dir: %w", err)
		}
		return a.join(ctx, mc, peers)
	}
}

// peers are the .nodes addresses other than our own.
func (a *Agent) peers() []string {
	var out []string
	for _, n := range a.cfg.Nodes {
		if n != a.cfg.BindAddress {
			out = append(out, n.Addr().String())
		}
	}
	return out
}

func (a *Agent) bootstrap(ctx context.Context, mc etcdmember.Config) error {
	if a.cfg.IsWitness {
		return fmt.Errorf("%w: a witness cannot start a new cluster: add the bind.address of a running member (e.g. the primary's) to %s and start again", ErrRefused, a.cfg.NodesFile)
	}
	obs := a.observeLocal(ctx)
	if !obs.Up {
		return fmt.Errorf("%w: cannot start a new cluster: the local database at %s:%d is not reachable (%s); start PostgreSQL first, or, to join an existing cluster, list a running member's bind.address in %s",
			ErrRefused, a.self, a.cfg.DB.Port, obs.Error, a.cfg.NodesFile)
	}
	if obs.InRecovery {
		return fmt.Errorf("%w: cannot start a new cluster on a standby (the local database is in recovery): start the primary's agent first, then list its bind.address in %s",
			ErrRefused, a.cfg.NodesFile)
	}
	mc.State = "new"
	mc.InitialCluster = a.bind + "=" + a.peerURL.String()
	mc.Token = "pgfm-" + a.cfg.Cluster + "-" + randomHex(8)
	a.log.Info("starting a new cluster on this primary", "token", mc.Token)
	if err := a.startMember(ctx, mc); err != nil {
		return err
	}
	return a.bootstrapKeys(ctx, mc.Token)
}

// bootstrapKeys creates the cluster's keys with this primary as its first
// member and primary (epoch 1); token is the embedded etcd's cluster token.
func (a *Agent) bootstrapKeys(ctx context.Context, token string) error {
	obs := a.observeLocal(ctx)
	if !obs.Up || obs.InRecovery {
		return fmt.Errorf("the local database is no longer a running primary (%s); start again", obs.Error)
	}
	a.log.Info("creating the cluster's keys with this node as primary", "cluster", a.cfg.Cluster)
	info := dcs.Info{Name: a.cfg.Cluster, Token: token, CreatedAt: time.Now().UTC(), CreatedBy: a.self}
	err := a.store.Bootstrap(ctx, info, a.registration())
	if err != nil && !errors.Is(err, dcs.ErrExists) {
		return err
	}
	return a.store.InitPrimary(ctx, dcs.Primary{
		Node: a.self, Epoch: 1, Phase: dcs.PhasePromoted, Timeline: obs.Timeline,
		LastLSN: obs.CurrentLSN, Since: time.Now().UTC(), Reason: "the cluster was started on this primary",
	})
}

func (a *Agent) join(ctx context.Context, mc etcdmember.Config, peers []string) error {
	req := httpapi.JoinRequest{
		Cluster: a.cfg.Cluster, Address: a.self, BindAddress: a.bind,
		Version: version.Version, Witness: a.cfg.IsWitness,
	}
	// A new member checks its initial cluster against the members it
	// reaches; one that has not applied our admission yet makes it fail
	// ("member count is unequal"). Such a start is retried from scratch:
	// the admission of the same peer URL is idempotent.
	for attempt := 1; ; attempt++ {
		resp, err := a.askToJoin(ctx, req, peers)
		if err != nil {
			return err
		}
		mc.State = "existing"
		mc.InitialCluster = resp.InitialCluster
		mc.Token = resp.Token
		a.log.Info("admitted; starting the consensus member", "initial_cluster", resp.InitialCluster)
		err = a.startMember(ctx, mc)
		if err == nil {
			return a.ensureRegistered(ctx)
		}
		if attempt == 5 || ctx.Err() != nil {
			return err
		}
		a.log.Warn("the new consensus member did not start; joining again", "attempt", attempt, "err", err)
		a.closeConsensus()
		a.member, a.store, a.members = nil, nil, nil
		if err := os.RemoveAll(mc.DataDir); err != nil {
			return fmt.Errorf("state.dir: %w", err)
		}
		sleep(ctx, time.Second)
	}
}

// askToJoin asks each listed member in turn until one admits us. A refusal
// is final; silence is retried until joinPatience runs out.
func (a *Agent) askToJoin(ctx context.Context, req httpapi.JoinRequest, peers []string) (httpapi.JoinResponse, error) {
	deadline := time.Now().Add(joinPatience)
	var lastErr error
	for attempt := 0; ; attempt++ {
		for _, p := range peers {
			c := httpapi.NewClient(httpapi.URL(p, a.cfg.AdminPort), "", a.self, a.cfg.RemoteTimeout+5*time.Second)
			resp, err := c.Join(ctx, req)
			if err == nil {
				return resp, nil
			}
			var apiErr *httpapi.Error
			if errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable {
				return resp, fmt.Errorf("%w: member %s refused to admit this node: %s", ErrRefused, p, apiErr.Msg)
			}
			lastErr = err
			if attempt%10 == 0 {
				a.log.Warn("cannot join through member yet; retrying", "member", p, "err", err)
			}
		}
		if time.Now().After(deadline) {
			return httpapi.JoinResponse{}, fmt.Errorf("%w: no member listed in %s admitted this node within %s (last error: %v); check that their agents run and that admin.port %d is the same on every node",
				ErrRefused, a.cfg.NodesFile, joinPatience, lastErr, a.cfg.AdminPort)
		}
		select {
		case <-ctx.Done():
			return httpapi.JoinResponse{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// startMember starts the member and waits until it serves as a voter.
func (a *Agent) startMember(ctx context.Context, mc etcdmember.Config) error {
	m, err := etcdmember.Start(mc)
	if err != nil {
		return err
	}
	a.member = m
	store, err := dcs.Open(dcs.Conn{Endpoints: []string{mc.ClientURL()}}, a.cfg.Cluster)
	if err != nil {
		return err
	}
	a.store, a.members = store, store

	wait := func(what string, f func(context.Context) error) error {
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := f(wctx)
			cancel()
			if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			a.log.Warn("still waiting: " + what)
		}
	}
	if err := wait("the consensus member is not ready; a majority of the cluster's members must be running", m.WaitReady); err != nil {
		return err
	}
	if err := wait("this member is still a learner; a running member promotes it once it has caught up", m.WaitVoter); err != nil {
		return err
	}
	return nil
}

// ensureRegistered writes our registration unless it is already there
// (a restart) or the cluster was not initialised yet (bootstrap crashed).
func (a *Agent) ensureRegistered(ctx context.Context) error {
	if _, err := a.store.Info(ctx); err != nil {
		err := a.store.Bootstrap(ctx, dcs.Info{Name: a.cfg.Cluster, Token: "unknown", CreatedAt: time.Now().UTC(), CreatedBy: a.self}, a.registration())
		if err != nil && !errors.Is(err, dcs.ErrExists) {
			return err
		}
	}
	_, ok, err := a.store.Registration(ctx, a.self)
	if err != nil || ok {
		return err
	}
	allowed, err := a.store.IsAllowed(ctx, a.self)
	if err != nil {
		return err
	}
	if !allowed {
		return fmt.Errorf("%w: %s is no longer allowed in cluster %q (disallow-node)", ErrRemoved, a.self, a.cfg.Cluster)
	}
	return a.store.Register(ctx, a.registration())
}

func (a *Agent) registration() cluster.Registration {
	reg := cluster.Registration{
		Address: a.self, BindAddr: a.bind, AdminURL: a.adminURL, DBPort: a.cfg.DB.Port,
		Witness: a.cfg.IsWitness, JoinedAt: time.Now().UTC(),
	}
	if a.member != nil {
		reg.MemberID = a.member.ID()
	}
	return reg
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
