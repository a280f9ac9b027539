package decide

import (
	"maps"
	"slices"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// The test cluster: one primary, two standbys and a witness, epoch 7.
const (
	p  = "10.0.0.1"
	s1 = "10.0.0.2"
	s2 = "10.0.0.3"
	w  = "10.0.0.4"

	lsn0 cluster.LSN = 0x3000000 // everyone's position in the healthy cluster
	mib              = 1 << 20
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// edit changes a healthy view to describe a scenario at time now.
type edit func(v *View, now time.Time)

// healthy is the test cluster with every agent and database up, streaming,
// and every agent's probe of every other database fresh and up.
func healthy(now time.Time) View {
	v := View{
		Settings: DefaultSettings(),
		Epoch:    7,
		Primary:  PrimaryRecord{Node: p, Epoch: 7, Timeline: 1, LastLSN: lsn0},
		Members:  map[string]MemberView{},
	}
	v.Members[p] = MemberView{Status: &cluster.MemberStatus{Address: p, Type: cluster.Primary, Promotable: true,
		DB: cluster.DBObservation{Up: true, Timeline: 1, CurrentLSN: lsn0}}}
	for _, s := range []string{s1, s2} {
		v.Members[s] = MemberView{Status: standby(s, lsn0)}
	}
	v.Members[w] = MemberView{Witness: true, Status: &cluster.MemberStatus{Address: w, Type: cluster.Witness}}
	for _, db := range []string{p, s1, s2} {
		mv := v.Members[db]
		mv.RemoteDB = map[string]Probe{}
		for obs := range v.Members {
			if obs != db {
				mv.RemoteDB[obs] = Probe{DBObservation: v.Members[db].Status.DB, At: now}
			}
		}
		v.Members[db] = mv
	}
	return v
}

func standby(addr string, l cluster.LSN) *cluster.MemberStatus {
	return &cluster.MemberStatus{Address: addr, Type: cluster.Standby, Promotable: true,
		DB: cluster.DBObservation{Up: true, InRecovery: true, Timeline: 1, ReceiveLSN: l, ReplayLSN: l,
			WalReceiver: "streaming", SenderHost: p}}
}

func member(v *View, addr string, f func(*MemberView)) {
	mv := v.Members[addr]
	f(&mv)
	v.Members[addr] = mv
}

func status(v *View, addr string, f func(*cluster.MemberStatus)) {
	member(v, addr, func(mv *MemberView) { f(mv.Status) })
}

// agentDown: addr's lease is gone, and with it the probes it published.
func agentDown(addr string) edit {
	return func(v *View, _ time.Time) {
		member(v, addr, func(mv *MemberView) { mv.Status = nil })
		for other := range v.Members {
			member(v, other, func(mv *MemberView) { delete(mv.RemoteDB, addr) })
		}
	}
}

func cleanStop(addr string) edit {
	return func(v *View, now time.Time) {
		agentDown(addr)(v, now)
		member(v, addr, func(mv *MemberView) { mv.CleanStop = true })
	}
}

// localDBDown: addr's own agent reports its database down.
func localDBDown(addr string) edit {
	return func(v *View, _ time.Time) {
		status(v, addr, func(st *cluster.MemberStatus) { st.DB = cluster.DBObservation{Error: "connection refused"} })
	}
}

// remoteDown: every other live agent fails to reach addr's database now.
func remoteDown(addr string) edit {
	return func(v *View, now time.Time) {
		member(v, addr, func(mv *MemberView) {
			for obs := range mv.RemoteDB {
				mv.RemoteDB[obs] = Probe{DBObservation: cluster.DBObservation{Error: "timeout"}, At: now}
			}
		})
	}
}

// remoteStale: the other agents' probes of addr are a minute old.
func remoteStale(addr string) edit {
	return func(v *View, now time.Time) {
		member(v, addr, func(mv *MemberView) {
			for obs, pr := range mv.RemoteDB {
				pr.At = now.Add(-time.Minute)
				mv.RemoteDB[obs] = pr
			}
		})
	}
}

func dbFailed(addr string) edit { return both(localDBDown(addr), remoteDown(addr)) }

// restarting: addr's agent restarts its database locally until until.
func restarting(addr string, until time.Duration) edit {
	return func(v *View, _ time.Time) {
		status(v, addr, func(st *cluster.MemberStatus) { st.RestartingUntil = t0.Add(until) })
	}
}

// postmasterGone: addr's agent found no postmaster process.
func postmasterGone(addr string) edit {
	return func(v *View, _ time.Time) {
		status(v, addr, func(st *cluster.MemberStatus) { st.PostmasterGone = true })
	}
}
func nodeFailed(addr string) edit { return both(remoteDown(addr), agentDown(addr)) }

func both(es ...edit) edit {
	return func(v *View, now time.Time) {
		for _, e := range es {
			e(v, now)
		}
	}
}

func settings(f func(*Settings)) edit {
	return func(v *View, _ time.Time) { f(&v.Settings) }
}

func received(addr string, l cluster.LSN) edit {
	return func(v *View, _ time.Time) {
		status(v, addr, func(st *cluster.MemberStatus) { st.DB.ReceiveLSN, st.DB.ReplayLSN = l, l })
	}
}

func fo(from, to string, epoch uint64) string {
	return Failover{From: from, To: to, NewEpoch: epoch}.String()
}

func note(sev Severity, subject, node string) string {
	return Notify{Severity: sev, Subject: subject, Node: node}.String()
}

func strs(as []Action) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// cloneView deep-copies a View so a test can prove Step left it alone.
func cloneView(v View) View {
	c := v
	c.Settings.Priority = slices.Clone(v.Settings.Priority)
	c.Members = map[string]MemberView{}
	for a, mv := range v.Members {
		if mv.Status != nil {
			st := *mv.Status
			st.Priority = slices.Clone(st.Priority)
			mv.Status = &st
		}
		mv.RemoteDB = maps.Clone(mv.RemoteDB)
		c.Members[a] = mv
	}
	return c
}

func cloneMemory(m Memory) Memory {
	m.Notified = maps.Clone(m.Notified)
	return m
}
