package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/dcs"
)

// useExternal connects the agent to an etcd cluster that someone else runs
// (dcs.endpoints) instead of starting a member here. The first agent on a
// primary creates the cluster's keys under /pgfm/CLUSTER/; every other
// agent registers itself once its address is allowed. Everything after
// this is the same in both modes.
func (a *Agent) useExternal(ctx context.Context) error {
	d := a.cfg.DCS
	where := strings.Join(d.Endpoints, ",")
	store, err := dcs.Open(dcs.Conn{Endpoints: d.Endpoints, CACert: d.CACert, Cert: d.Cert, Key: d.Key, User: d.User, Password: d.Password}, a.cfg.Cluster)
	if err != nil {
		return fmt.Errorf("%w: %w (check dcs.endpoints, dcs.user, dcs.password and the TLS files in %s)", ErrRefused, err, a.cfg.PropertiesFile)
	}
	a.store = store
	a.log.Info("using an external etcd", "endpoints", where)
	deadline := time.Now().Add(joinPatience)
	for attempt := 0; ; attempt++ {
		err := a.registerExternal(ctx)
		if err == nil || errors.Is(err, ErrRefused) || errors.Is(err, ErrRemoved) || ctx.Err() != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: cannot use etcd at %s within %s: %w (check that etcd runs and that dcs.endpoints, dcs.user and the TLS files are right)",
				ErrRefused, where, joinPatience, err)
		}
		if attempt%10 == 0 {
			a.log.Warn("cannot use the external etcd yet; retrying", "endpoints", where, "err", err)
		}
		sleep(ctx, time.Second)
	}
}

// registerExternal creates the cluster (on a primary, when nobody has) or
// registers this agent in it. Errors other than refusals are retried.
func (a *Agent) registerExternal(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := a.store.Info(ctx)
	switch {
	case errors.Is(err, dcs.ErrNoCluster):
		if a.cfg.IsWitness || !a.localPrimary(ctx) {
			return fmt.Errorf("cluster %q does not exist in etcd yet: waiting for its primary's agent to create it", a.cfg.Cluster)
		}
		if err := a.bootstrapKeys(ctx, "external"); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	_, registered, err := a.store.Registration(ctx, a.self)
	if err != nil || registered {
		return err
	}
	allowed, err := a.store.IsAllowed(ctx, a.self)
	if err != nil {
		return err
	}
	if !allowed {
		if !a.cfg.AutoAllowHosts {
			return fmt.Errorf("%w: address %s is not on the allowed node host list of cluster %q: run `pgfm allow-node %s %s` on a running member, then start this agent again",
				ErrRefused, a.self, a.cfg.Cluster, a.cfg.Cluster, a.self)
		}
		if err := a.store.Allow(ctx, a.self, a.self+" (auto.allow.hosts)"); err != nil {
			return err
		}
	}
	return a.store.Register(ctx, a.registration())
}

// localPrimary reports whether the local database runs as a primary.
func (a *Agent) localPrimary(ctx context.Context) bool {
	obs := a.observeLocal(ctx)
	return obs.Up && !obs.InRecovery
}
