package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/decide"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/syncrep"
)

// coordinatorLoop runs on every agent; only the elected coordinator acts.
// It decides on every status change (watched) and every local.period,
// and does the membership housekeeping every few seconds.
func (a *Agent) coordinatorLoop(ctx context.Context) {
	go a.watchStatuses(ctx)
	t := time.NewTicker(a.cfg.LocalPeriod)
	defer t.Stop()
	var mem decide.Memory
	var lastHousekeeping time.Time
	voters := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.coordKick:
		}
		a.mu.Lock()
		el := a.election
		a.mu.Unlock()
		if el == nil {
			mem = decide.Memory{} // a new term starts from nothing
			continue
		}
		if time.Since(lastHousekeeping) > 2*time.Second {
			voters = a.housekeeping(ctx)
			lastHousekeeping = time.Now()
		}
		mem = a.decideOnce(ctx, mem, voters, el.Guard())
	}
}

// watchStatuses wakes the coordinator whenever any agent publishes.
func (a *Agent) watchStatuses(ctx context.Context) {
	for ctx.Err() == nil {
		_ = a.store.WatchStatuses(ctx, func() { a.wake(a.coordKick); a.wake(a.syncKick) })
		sleep(ctx, 200*time.Millisecond)
	}
}

// housekeeping promotes learners whose admitting agent went away before
// promoting them, and counts the voting members for the majority check.
func (a *Agent) housekeeping(ctx context.Context) int {
	if a.member == nil {
		return 0 // an external etcd's membership is its owner's
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	list, err := a.members.Members(lctx)
	if err != nil {
		return 0
	}
	voters := 0
	for _, m := range list {
		if !m.IsLearner {
			voters++
			continue
		}
		if m.Name == "" {
			continue
		}
		if err := a.members.PromoteMember(lctx, m.ID); err == nil {
			a.log.Info("promoted a learner to voter", "member", m.Name)
		}
	}
	return voters
}

// decideOnce reads the cluster, asks decide.Step what to do and does it.
func (a *Agent) decideOnce(ctx context.Context, mem decide.Memory, voters int, guard dcs.Guard) decide.Memory {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout+time.Second)
	defer cancel()
	snap, err := a.store.Snapshot(dctx)
	if err != nil || snap.PrimaryRev == 0 {
		return mem
	}
	if snap.Primary.Phase != dcs.PhasePromoted {
		return mem // a failover is under way, or waits for an operator
	}
	plan, next := decide.Step(a.view(snap, voters), mem, time.Now())
	if a.syncMode() && hasFailover(plan) {
		// Published positions may be a local.period old, older than the
		// last write the primary acknowledged: the standbys of the
		// synchronous set are asked again before one is chosen.
		a.observeStandbys(dctx, &snap, syncMembers(snap))
		plan, next = decide.Step(a.view(snap, voters), mem, time.Now())
	}
	for _, act := range plan.Actions {
		switch act := act.(type) {
		case decide.Failover:
			a.commitFailover(dctx, snap, act, guard)
		case decide.Notify:
			a.notify(ctx, severity(act.Severity), act.Subject, fmt.Sprintf("%s: %s", act.Node, act.Detail))
		}
	}
	return next
}

// view builds decide's input from a snapshot.
func (a *Agent) view(snap dcs.Snapshot, voters int) decide.View {
	s := decide.Settings{
		AutoFailover: a.cfg.AutoFailover, MinimumStandbys: a.cfg.MinimumStandbys,
		MaxFailoverLag: a.cfg.MaxFailoverLag, PrimaryShutdownAsFailure: a.cfg.PrimaryShutdownAsFailure,
		NodeTimeout: a.cfg.NodeTimeout, LocalTimeoutFinal: a.cfg.LocalTimeoutFinal,
		ExternalDCS: a.cfg.DCS.External(),
		Paused:      snap.Maintenance != nil, NodePriority: snap.Priorities,
		SyncMode: a.cfg.SyncMode,
	}
	if p, ok := snap.Status[snap.Primary.Node]; ok {
		s.Priority = p.Priority
	}
	if len(s.Priority) == 0 {
		for _, p := range a.cfg.PriorityStandbys {
			s.Priority = append(s.Priority, p.String())
		}
	}
	v := decide.View{
		Settings: s, Epoch: snap.Primary.Epoch, Voters: voters,
		Primary: decide.PrimaryRecord{Node: snap.Primary.Node, Epoch: snap.Primary.Epoch, Timeline: snap.Primary.Timeline, LastLSN: snap.Primary.LastLSN, Phase: snap.Primary.Phase, Previous: snap.Primary.Previous},
		Members: map[string]decide.MemberView{},
	}
	if snap.Sync != nil {
		v.Sync = &syncrep.Set{Members: snap.Sync.Members, Quorum: snap.Sync.Quorum}
	}
	for _, reg := range snap.Registrations {
		mv := decide.MemberView{CleanStop: snap.CleanStops[reg.Address], Witness: reg.Witness, RemoteDB: map[string]decide.Probe{}}
		if st, ok := snap.Status[reg.Address]; ok {
			st := st
			mv.Status = &st
		}
		for obs, st := range snap.Status {
			if st.PrimaryProbe != nil && st.PrimaryProbe.Node == reg.Address && obs != reg.Address {
				mv.RemoteDB[obs] = decide.Probe{DBObservation: st.PrimaryProbe.DB, At: st.PrimaryProbe.At}
			}
		}
		v.Members[reg.Address] = mv
	}
	return v
}

// commitFailover names the new primary: one transaction, guarded by the
// old record and by this agent still being the coordinator. Only then does
// anyone act on it (DESIGN.md §3).
func (a *Agent) commitFailover(ctx context.Context, snap dcs.Snapshot, f decide.Failover, guard dcs.Guard) {
	next := dcs.Primary{
		Node: f.To, Epoch: f.NewEpoch, Phase: dcs.PhasePromoting, Previous: f.From,
		Reason: f.Reason, Since: time.Now().UTC(), LastLSN: snap.Primary.LastLSN, Timeline: snap.Primary.Timeline,
	}
	ok, err := a.store.UpdatePrimaryAndSync(ctx, snap.PrimaryRev, next, a.newEpochSync(next), guard)
	if err != nil || !ok {
		a.log.Warn("failover not committed (the record changed or this agent is no longer the coordinator)", "to", f.To, "err", err)
		return
	}
	a.log.Warn("failover committed", "from", f.From, "to", f.To, "epoch", f.NewEpoch, "reason", f.Reason)
	a.notify(ctx, hook.Severe, "Primary database failure", fmt.Sprintf("%s failed (%s); %s is promoted (epoch %d).", f.From, f.Reason, f.To, f.NewEpoch))
}

func severity(s decide.Severity) hook.Severity {
	switch s {
	case decide.Severe:
		return hook.Severe
	case decide.Warning:
		return hook.Warning
	}
	return hook.Info
}

// notify logs an event and sends it to script.notification / user.email.
func (a *Agent) notify(ctx context.Context, sev hook.Severity, subject, body string) {
	if a.notes == nil {
		return
	}
	a.notes.Post(ctx, hook.Notification{Severity: sev, Subject: subject + " on cluster " + a.cfg.Cluster, Body: body, Cluster: a.cfg.Cluster, Node: a.self, At: time.Now().UTC()})
}

// runScript runs one of the user's scripts with the configured timeout and
// logs its result.
func (a *Agent) runScript(ctx context.Context, name, cmdline string, vars hook.Placeholders) hook.Result {
	res := a.runner.Run(ctx, name, cmdline, vars, hook.Env(a.cfg.Cluster, name, vars), a.cfg.ScriptTimeout)
	sev := hook.Info
	if res.Outcome != hook.OK {
		sev = hook.Severe
	}
	a.notify(ctx, sev, "Executed "+name, fmt.Sprintf("%s: %s (exit %d)\n%s", cmdline, res.Outcome, res.ExitCode, res.Output))
	return res
}

func (a *Agent) syncMode() bool {
	return a.cfg.SyncMode == syncrep.On || a.cfg.SyncMode == syncrep.Strict
}

func hasFailover(p decide.Plan) bool {
	for _, act := range p.Actions {
		if _, ok := act.(decide.Failover); ok {
			return true
		}
	}
	return false
}

func syncMembers(snap dcs.Snapshot) []string {
	if snap.Sync == nil {
		return nil
	}
	return snap.Sync.Members
}

// newEpochSync is, in synchronous mode, the synchronous set recorded with
// a failover that names p: nobody yet, so that the new primary's first
// writes are never taken for the old set's (it records it again before it
// promotes, when this was not done).
func (a *Agent) newEpochSync(p dcs.Primary) *dcs.Sync {
	if !a.syncMode() {
		return nil
	}
	return &dcs.Sync{Epoch: p.Epoch, Primary: p.Node, Since: time.Now().UTC()}
}
