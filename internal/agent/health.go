package agent

import (
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// healthOf is the load balancers' view of a node: st is the agent's last
// observation, rec the last primary record it saw, leaseValid whether its
// lease is certainly alive now. A node is Primary only when all of these
// hold at once: its database is up and writable, the record names it with
// phase promoted, and its lease is valid. A primary cut off from the
// majority stops being Primary when its lease may have expired, which is
// before any other node can be promoted (lease.go), and a new primary
// becomes Primary only once its promotion is recorded, so no two nodes
// are Primary at the same time.
//
// Idleness does not matter for Primary: an idle agent on the named,
// writable primary still has the database that takes the cluster's
// writes (the cluster does not fail over from it).
func healthOf(self string, witness bool, st cluster.MemberStatus, rec dcs.Primary, leaseValid bool) httpapi.Health {
	h := httpapi.Health{
		Type: st.Type, DBUp: st.DB.Up, InRecovery: st.DB.InRecovery,
		HoldsLease: leaseValid, WalReceiver: st.DB.WalReceiver, ObservedAt: st.ObservedAt,
	}
	if witness {
		h.Type, h.DBUp, h.InRecovery, h.WalReceiver = cluster.Witness, false, false, ""
		return h
	}
	h.Primary = st.DB.Up && !st.DB.InRecovery && leaseValid &&
		rec.Node == self && rec.Phase == dcs.PhasePromoted
	if st.DB.Up && st.DB.InRecovery && st.DB.ReplayLSN != 0 && rec.LastLSN != 0 {
		h.LagKnown = true
		if rec.LastLSN > st.DB.ReplayLSN {
			h.LagBytes = int64(rec.LastLSN - st.DB.ReplayLSN)
		}
	}
	return h
}

// health reads what healthOf needs from memory: it never waits on etcd or
// on the database, only on the agent's and the lease's mutexes, which are
// held briefly.
func (a *Agent) health(now time.Time) httpapi.Health {
	a.mu.Lock()
	st, rec, live := a.status, a.primary, a.live
	a.mu.Unlock()
	valid := live != nil && live.Valid(now)
	h := healthOf(a.self, a.cfg.IsWitness, st, rec, valid)
	h.Synchronous = !a.cfg.IsWitness && a.inSyncSet()
	return h
}
