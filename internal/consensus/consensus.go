// Package consensus brings a node into its cluster's consensus, once,
// when its agent starts: as the same embedded etcd member after a restart,
// as a new member admitted by a running one (through .nodes), as the first
// member of a new cluster on a primary, or as a client of an external etcd
// (dcs.endpoints). The agent gets back the member and the store; all its
// HA code is the same whichever way the node came in.
package consensus

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/etcdmember"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/pki"
	"github.com/pgfm/pgfm/internal/version"
)

// Reasons a node cannot come in that a restart alone does not fix
// (cmd/pgfm maps them to exit codes).
var (
	// ErrRefused: the cluster refused to admit this node, or the node must
	// not start a cluster; the user has to change something first.
	ErrRefused = errors.New("refused")
	// ErrRemoved: disallow-node removed this node from the cluster.
	ErrRemoved = errors.New("this node was removed from the cluster")
)

// Node is what coming in needs to know of this node.
type Node struct {
	Config   config.Config
	Log      *slog.Logger
	Self     string // bind.address IP, the node's identity
	Bind     string // bind.address host:port, the etcd member name
	PeerURL  url.URL
	AdminURL string
	// LocalDB observes the local database: only a running primary may
	// start a cluster.
	LocalDB func(ctx context.Context) cluster.DBObservation
	// Creds receives this node's credentials as soon as they are known
	// (the agent's API serves TLS with them).
	Creds *pki.Holder
}

// Joined is this node's place in the consensus: the embedded member (nil
// with an external etcd) and the store on it.
type Joined struct {
	Member *etcdmember.Member
	Store  *dcs.Store
}

// starter carries one start-up.
type starter struct {
	cfg                  config.Config
	log                  *slog.Logger
	self, bind, adminURL string
	peerURL              url.URL
	localDB              func(ctx context.Context) cluster.DBObservation
	creds                *pki.Holder
	member               *etcdmember.Member
	store                *dcs.Store
}

// Start brings the node in; on an error nothing it started is left
// running.
func Start(ctx context.Context, n Node) (Joined, error) {
	s := &starter{cfg: n.Config, log: n.Log, self: n.Self, bind: n.Bind, adminURL: n.AdminURL, peerURL: n.PeerURL, localDB: n.LocalDB, creds: n.Creds}
	if s.creds == nil {
		s.creds = &pki.Holder{}
	}
	if err := s.start(ctx); err != nil {
		s.close()
		return Joined{}, err
	}
	return Joined{Member: s.member, Store: s.store}, nil
}

func (s *starter) close() {
	if s.store != nil {
		s.store.Close()
	}
	if s.member != nil {
		s.member.Close()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// How long a joining agent keeps trying to reach a member before it gives
// up: long enough for the other agents to restart, short enough that a
// wrong .nodes file is reported.
const joinPatience = 2 * time.Minute

func (s *starter) memberConfig() etcdmember.Config {
	return etcdmember.Config{
		Name:         s.bind,
		DataDir:      filepath.Join(s.cfg.StateDir, "etcd"),
		PeerURL:      s.peerURL,
		ClientSocket: filepath.Join(s.cfg.StateDir, "etcd.sock"),
		ElectionMs:   uint(s.cfg.ElectionTimeout.Milliseconds()),
		TickMs:       uint(max(s.cfg.ElectionTimeout.Milliseconds()/10, 10)),
	}
}

// start brings up this node's etcd member: as the same member
// when state.dir has its data, else by joining through .nodes, else (only
// on a primary) by starting a new cluster.
func (s *starter) start(ctx context.Context) error {
	if s.cfg.DCS.External() {
		return s.useExternal(ctx)
	}
	mc := s.memberConfig()
	switch peers := s.peers(); {
	case etcdmember.HasData(mc.DataDir):
		s.log.Info("restarting as an existing member", "state_dir", s.cfg.StateDir)
		// etcd reads the membership from its data; these only satisfy
		// its configuration checks.
		mc.State = "existing"
		mc.InitialCluster = s.bind + "=" + s.peerURL.String()
		if err := s.credentials(false); err != nil {
			return err
		}
		if err := s.startMember(ctx, mc); err != nil {
			return err
		}
		return s.ensureRegistered(ctx)
	case len(peers) == 0:
		return s.bootstrap(ctx, mc)
	default:
		// A data dir without a WAL is the rest of a failed attempt.
		if err := os.RemoveAll(mc.DataDir); err != nil {
			return fmt.Errorf("state.dir: %w", err)
		}
		if err := s.credentials(false); err != nil {
			return err
		}
		return s.join(ctx, mc, peers)
	}
}

// peers are the .nodes addresses other than our own.
func (s *starter) peers() []string {
	var out []string
	for _, n := range s.cfg.Nodes {
		if n != s.cfg.BindAddress {
			out = append(out, n.Addr().String())
		}
	}
	return out
}

func (s *starter) bootstrap(ctx context.Context, mc etcdmember.Config) error {
	if s.cfg.IsWitness {
		return fmt.Errorf("%w: a witness cannot start a new cluster: add the bind.address of a running member (e.g. the primary's) to %s and start again", ErrRefused, s.cfg.NodesFile)
	}
	obs := s.localDB(ctx)
	if !obs.Up {
		return fmt.Errorf("%w: cannot start a new cluster: the local database at %s:%d is not reachable (%s); start PostgreSQL first, or, to join an existing cluster, list a running member's bind.address in %s",
			ErrRefused, s.self, s.cfg.DB.Port, obs.Error, s.cfg.NodesFile)
	}
	if obs.InRecovery {
		return fmt.Errorf("%w: cannot start a new cluster on a standby (the local database is in recovery): start the primary's agent first, then list its bind.address in %s",
			ErrRefused, s.cfg.NodesFile)
	}
	if err := s.credentials(true); err != nil {
		return err
	}
	mc.State = "new"
	mc.InitialCluster = s.bind + "=" + s.peerURL.String()
	mc.Token = "pgfm-" + s.cfg.Cluster + "-" + randomHex(8)
	s.log.Info("starting a new cluster on this primary", "token", mc.Token)
	if err := s.startMember(ctx, mc); err != nil {
		return err
	}
	return s.bootstrapKeys(ctx, mc.Token)
}

// bootstrapKeys creates the cluster's keys with this primary as its first
// member and primary (epoch 1); token is the embedded etcd's cluster token.
func (s *starter) bootstrapKeys(ctx context.Context, token string) error {
	obs := s.localDB(ctx)
	if !obs.Up || obs.InRecovery {
		return fmt.Errorf("the local database is no longer a running primary (%s); start again", obs.Error)
	}
	s.log.Info("creating the cluster's keys with this node as primary", "cluster", s.cfg.Cluster)
	info := dcs.Info{Name: s.cfg.Cluster, Token: token, CreatedAt: time.Now().UTC(), CreatedBy: s.self}
	err := s.store.Bootstrap(ctx, info, s.registration())
	if err != nil && !errors.Is(err, dcs.ErrExists) {
		return err
	}
	return s.store.InitPrimary(ctx, dcs.Primary{
		Node: s.self, Epoch: 1, Phase: dcs.PhasePromoted, Timeline: obs.Timeline,
		LastLSN: obs.CurrentLSN, Since: time.Now().UTC(), Reason: "the cluster was started on this primary",
	})
}

func (s *starter) join(ctx context.Context, mc etcdmember.Config, peers []string) error {
	req := httpapi.JoinRequest{
		Cluster: s.cfg.Cluster, Address: s.self, BindAddress: s.bind,
		Version: version.Version, Witness: s.cfg.IsWitness,
	}
	// A new member checks its initial cluster against the members it
	// reaches; one that has not applied our admission yet makes it fail
	// ("member count is unequal"). Such a start is retried from scratch:
	// the admission of the same peer URL is idempotent.
	for attempt := 1; ; attempt++ {
		resp, err := s.askToJoin(ctx, req, peers)
		if err != nil {
			return err
		}
		mc.State = "existing"
		mc.InitialCluster = resp.InitialCluster
		mc.Token = resp.Token
		s.log.Info("admitted; starting the consensus member", "initial_cluster", resp.InitialCluster)
		err = s.startMember(ctx, mc)
		if err == nil {
			return s.ensureRegistered(ctx)
		}
		if attempt == 5 || ctx.Err() != nil {
			return err
		}
		s.log.Warn("the new consensus member did not start; joining again", "attempt", attempt, "err", err)
		s.close()
		s.member, s.store = nil, nil
		if err := os.RemoveAll(mc.DataDir); err != nil {
			return fmt.Errorf("state.dir: %w", err)
		}
		sleep(ctx, time.Second)
	}
}

// askToJoin asks each listed member in turn until one admits us. A refusal
// is final; silence is retried until joinPatience runs out.
func (s *starter) askToJoin(ctx context.Context, req httpapi.JoinRequest, peers []string) (httpapi.JoinResponse, error) {
	deadline := time.Now().Add(joinPatience)
	var lastErr error
	for attempt := 0; ; attempt++ {
		for _, p := range peers {
			c := httpapi.NewClient(httpapi.URL(p, s.cfg.AdminPort), "", s.self, s.cfg.RemoteTimeout+5*time.Second).
				WithTLS(s.creds.Get().ClientConfig())
			resp, err := c.Join(ctx, req)
			if err == nil {
				return resp, nil
			}
			var apiErr *httpapi.Error
			if errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable {
				return resp, fmt.Errorf("%w: member %s refused to admit this node: %s", ErrRefused, p, apiErr.Msg)
			}
			var unknownCA x509.UnknownAuthorityError
			var badCert tls.AlertError
			if errors.As(err, &unknownCA) || (errors.As(err, &badCert) && badCert == 42) {
				// 42: bad_certificate, the member's answer to ours.
				return resp, fmt.Errorf("%w: member %s is not of this node's cluster key (%v): copy %s from a running member of the cluster again (or check tls.ca.file)",
					ErrRefused, p, err, s.cfg.TLS.ClusterKeyFile)
			}
			lastErr = err
			if attempt%10 == 0 {
				s.log.Warn("cannot join through member yet; retrying", "member", p, "err", err)
			}
		}
		if time.Now().After(deadline) {
			return httpapi.JoinResponse{}, fmt.Errorf("%w: no member listed in %s admitted this node within %s (last error: %v); check that their agents run and that admin.port %d is the same on every node",
				ErrRefused, s.cfg.NodesFile, joinPatience, lastErr, s.cfg.AdminPort)
		}
		select {
		case <-ctx.Done():
			return httpapi.JoinResponse{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// credentials loads this node's credentials (creating the cluster key
// when create: only the node that starts a cluster does) and hands them
// to the agent.
func (s *starter) credentials(create bool) error {
	if s.creds.Get() != nil {
		return nil
	}
	ip := s.cfg.BindAddress.Addr()
	t := s.cfg.TLS
	if t.OwnPKI() {
		c, err := pki.LoadFiles(t.CAFile, t.CertFile, t.KeyFile, ip)
		if err != nil {
			return fmt.Errorf("%w: tls.ca.file, tls.cert.file, tls.key.file: %w", ErrRefused, err)
		}
		s.creds.Set(c)
		return nil
	}
	k, err := pki.LoadClusterKey(t.ClusterKeyFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && create:
		if k, err = pki.NewClusterKey(s.cfg.Cluster); err != nil {
			return err
		}
		if err := pki.WriteClusterKey(t.ClusterKeyFile, k); err != nil {
			return fmt.Errorf("%w: cannot create the cluster key: %w (set cluster.key.file to a path the agent may write)", ErrRefused, err)
		}
		s.log.Warn("created the cluster key; copy it to every other node of the cluster (mode 0600, owned by the agent's user) before their first start", "file", t.ClusterKeyFile)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: this node has no cluster key at %s: copy %s from a running member (its agent created it when the cluster started) "+
			"to this path, owned by the agent's user with mode 0600, or set cluster.key.file; see docs/security.md",
			ErrRefused, t.ClusterKeyFile, filepath.Base(t.ClusterKeyFile))
	case err != nil:
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	c, err := pki.FromClusterKey(k, ip, s.cfg.Cluster, s.cfg.StateDir)
	if err != nil {
		return err
	}
	s.creds.Set(c)
	return nil
}

// startMember starts the member and waits until it serves as a voter.
func (s *starter) startMember(ctx context.Context, mc etcdmember.Config) error {
	c := s.creds.Get()
	mc.PeerCAFile, mc.PeerCertFile, mc.PeerKeyFile = c.CAFile, c.CertFile, c.KeyFile
	m, err := etcdmember.Start(mc)
	if err != nil {
		return err
	}
	s.member = m
	store, err := dcs.Open(dcs.Conn{Endpoints: []string{mc.ClientURL()}}, s.cfg.Cluster)
	if err != nil {
		return err
	}
	s.store = store

	wait := func(what string, f func(context.Context) error) error {
		for {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := f(wctx)
			cancel()
			if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			s.log.Warn("still waiting: " + what)
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
func (s *starter) ensureRegistered(ctx context.Context) error {
	if _, err := s.store.Info(ctx); err != nil {
		err := s.store.Bootstrap(ctx, dcs.Info{Name: s.cfg.Cluster, Token: "unknown", CreatedAt: time.Now().UTC(), CreatedBy: s.self}, s.registration())
		if err != nil && !errors.Is(err, dcs.ErrExists) {
			return err
		}
	}
	_, ok, err := s.store.Registration(ctx, s.self)
	if err != nil || ok {
		return err
	}
	allowed, err := s.store.IsAllowed(ctx, s.self)
	if err != nil {
		return err
	}
	if !allowed {
		return fmt.Errorf("%w: %s is no longer allowed in cluster %q (disallow-node)", ErrRemoved, s.self, s.cfg.Cluster)
	}
	return s.store.Register(ctx, s.registration())
}

func (s *starter) registration() cluster.Registration {
	reg := cluster.Registration{
		Address: s.self, BindAddr: s.bind, AdminURL: s.adminURL, DBPort: s.cfg.DB.Port,
		Witness: s.cfg.IsWitness, JoinedAt: time.Now().UTC(),
	}
	if s.member != nil {
		reg.MemberID = s.member.ID()
	}
	return reg
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// useExternal connects the agent to an etcd cluster that someone else runs
// (dcs.endpoints) instead of starting a member here. The first agent on a
// primary creates the cluster's keys under /pgfm/CLUSTER/; every other
// agent registers itself once its address is allowed. Everything after
// this is the same in both modes.
func (s *starter) useExternal(ctx context.Context) error {
	d := s.cfg.DCS
	where := strings.Join(d.Endpoints, ",")
	store, err := dcs.Open(dcs.Conn{Endpoints: d.Endpoints, CACert: d.CACert, Cert: d.Cert, Key: d.Key, User: d.User, Password: d.Password}, s.cfg.Cluster)
	if err != nil {
		return fmt.Errorf("%w: %w (check dcs.endpoints, dcs.user, dcs.password and the TLS files in %s)", ErrRefused, err, s.cfg.PropertiesFile)
	}
	s.store = store
	if err := s.credentials(true); err != nil {
		return err
	}
	s.log.Info("using an external etcd", "endpoints", where)
	deadline := time.Now().Add(joinPatience)
	for attempt := 0; ; attempt++ {
		err := s.registerExternal(ctx)
		if err == nil || errors.Is(err, ErrRefused) || errors.Is(err, ErrRemoved) || ctx.Err() != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: cannot use etcd at %s within %s: %w (check that etcd runs and that dcs.endpoints, dcs.user and the TLS files are right)",
				ErrRefused, where, joinPatience, err)
		}
		if attempt%10 == 0 {
			s.log.Warn("cannot use the external etcd yet; retrying", "endpoints", where, "err", err)
		}
		sleep(ctx, time.Second)
	}
}

// registerExternal creates the cluster (on a primary, when nobody has) or
// registers this agent in it. Errors other than refusals are retried.
func (s *starter) registerExternal(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.store.Info(ctx)
	switch {
	case errors.Is(err, dcs.ErrNoCluster):
		if s.cfg.IsWitness || !s.localPrimary(ctx) {
			return fmt.Errorf("cluster %q does not exist in etcd yet: waiting for its primary's agent to create it", s.cfg.Cluster)
		}
		if err := s.bootstrapKeys(ctx, "external"); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	_, registered, err := s.store.Registration(ctx, s.self)
	if err != nil || registered {
		return err
	}
	allowed, err := s.store.IsAllowed(ctx, s.self)
	if err != nil {
		return err
	}
	if !allowed {
		if !s.cfg.AutoAllowHosts {
			return fmt.Errorf("%w: address %s is not on the allowed node host list of cluster %q: run `pgfm allow-node %s %s` on a running member, then start this agent again",
				ErrRefused, s.self, s.cfg.Cluster, s.cfg.Cluster, s.self)
		}
		if err := s.store.Allow(ctx, s.self, s.self+" (auto.allow.hosts)"); err != nil {
			return err
		}
	}
	return s.store.Register(ctx, s.registration())
}

// localPrimary reports whether the local database runs as a primary.
func (s *starter) localPrimary(ctx context.Context) bool {
	obs := s.localDB(ctx)
	return obs.Up && !obs.InRecovery
}
