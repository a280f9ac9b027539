package agent

import (
	"context"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/version"
)

// observeLocal probes the local database (nothing on a witness).
func (a *Agent) observeLocal(ctx context.Context) cluster.DBObservation {
	if a.cfg.IsWitness {
		return cluster.DBObservation{}
	}
	return a.observe(ctx, a.self, a.cfg.DB.Port, a.cfg.LocalTimeout)
}

// observe probes the database on host with the cluster's credentials.
func (a *Agent) observe(ctx context.Context, host string, port int, timeout time.Duration) cluster.DBObservation {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	obs, err := a.probe(ctx, a.connString(ctx, host, port, timeout))
	if postgres.IsAuthError(err) {
		obs.Error = a.connFailed(err).Error() // names the property that gives the password
	}
	return obs
}

// describe turns an observation into the status an agent publishes. The
// type follows EFM: a witness is a witness; a database that answers is a
// primary or a standby by pg_is_in_recovery(); one that does not is Idle.
func describe(cfg config.Config, self, bind, adminURL string, obs cluster.DBObservation, now, started time.Time) cluster.MemberStatus {
	st := cluster.MemberStatus{
		Address: self, BindAddr: bind, AdminURL: adminURL, DBPort: cfg.DB.Port, Version: version.Version,
		DB: obs, Promotable: cfg.Promotable, ObservedAt: now, StartedAt: started, AppName: cfg.ApplicationName,
	}
	if st.AppName == "" && !cfg.IsWitness {
		st.AppName = self
	}
	for _, p := range cfg.PriorityStandbys {
		st.Priority = append(st.Priority, p.String())
	}
	switch {
	case cfg.IsWitness:
		st.Type = cluster.Witness
		st.Promotable = false
		st.DBPort = 0
	case !obs.Up:
		st.Type = cluster.Idle
		st.IdleReason = "the local database does not answer: " + obs.Error
	case obs.InRecovery:
		st.Type = cluster.Standby
	default:
		st.Type = cluster.Primary
	}
	return st
}
