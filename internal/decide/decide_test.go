package decide

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// step is one call of Step, at t0+at, on the scenario's view with edits.
type step struct {
	at     time.Duration
	edits  []edit
	want   []string // the plan's actions, as Action.String()
	reason string   // a substring of the plan's reason
}

// scenario is a sequence of Steps sharing Memory; its edits apply to every step.
type scenario struct {
	name  string
	edits []edit
	mem   Memory
	steps []step
}

func at(d time.Duration, want ...string) step { return step{at: d, want: want} }

func (s step) with(es ...edit) step       { s.edits = append(s.edits, es...); return s }
func (s step) because(r string) step      { s.reason = r; return s }
func sc(name string, es ...edit) scenario { return scenario{name: name, edits: es} }
func (c scenario) from(m Memory) scenario { c.mem = m; return c }
func (c scenario) then(st ...step) scenario {
	c.steps = append(c.steps, st...)
	return c
}

const sec = time.Second

var scenarios = []scenario{
	sc("healthy cluster: nothing to do").then(at(0).because("healthy")),
	sc("no primary named: nothing to watch", func(v *View, _ time.Time) { v.Primary = PrimaryRecord{} }).
		then(at(0).because("no primary")),

	// Rules 1 and 13: a primary database failure, its agent alive, must last local.timeout.final.
	sc("rule1 primary db failed, agent alive: failover after local.timeout.final", dbFailed(p)).then(
		at(0).because("waiting"),
		at(1*sec).because("down for 1s of local.timeout.final 2s"),
		at(2*sec, fo(p, s1, 8)).because("primary database 10.0.0.1 failed"),
		at(3*sec, fo(p, s1, 8)).because("10.0.0.2 has the most WAL"), // repeated until committed: the executor's CAS makes it idempotent
	),
	sc("primary postmaster gone and unreachable: failover at once", dbFailed(p), postmasterGone(p)).
		then(at(0, fo(p, s1, 8)).because("its postmaster is gone")),
	sc("primary postmaster gone but others still reach the database: no failover", localDBDown(p), postmasterGone(p)).
		then(at(0, note(Warning, SubjectPrimaryCannotPing, p)), at(10*sec).because("no failover")),
	sc("primary restarting its database locally: no failover until primary.restart.timeout", dbFailed(p), restarting(p, 10*sec)).then(
		at(0).because("restarting its database locally"),
		at(9*sec).because("restarting"),
		at(10*sec, fo(p, s1, 8)),
	),
	sc("rule13 blip shorter than local.timeout.final: no failover, timer restarts").then(
		at(0).with(dbFailed(p)),
		at(1500*time.Millisecond).with(dbFailed(p)),
		at(1900*time.Millisecond).because("healthy"),
		at(3*sec).with(dbFailed(p)).because("waiting"),
		at(4500*time.Millisecond).with(dbFailed(p)).because("down for 1.5s"),
		at(5*sec, fo(p, s1, 8)).with(dbFailed(p)),
	),
	sc("rule13 failing-since from an older epoch is discarded", dbFailed(p)).
		from(Memory{Epoch: 6, PrimaryDBFailingSince: t0.Add(-time.Hour)}).then(at(0).because("down for 0s"), at(2*sec, fo(p, s1, 8))),
	sc("primary db down locally but reachable by others: notify once, no failover", localDBDown(p)).then(
		at(0, note(Warning, SubjectPrimaryCannotPing, p)).because("reachable from 10.0.0.2, 10.0.0.3, 10.0.0.4"),
		at(5*sec), at(60*sec).because("no failover"),
	),
	sc("primary db down, other agents' probes stale: wait", localDBDown(p), remoteStale(p)).then(
		at(0), at(10*sec).because("not probed by any other agent within node.timeout"),
	),

	// Rule 2: the primary's agent dies, its database keeps running.
	sc("rule2 primary agent failed, db reachable: warn once, no failover").then(
		at(0, note(Warning, SubjectPrimaryAgentFailed, p)).with(agentDown(p)).because("no failover until the agent returns"),
		at(1*sec).with(agentDown(p)),
		at(30*sec).with(agentDown(p)),
		at(31*sec).because("healthy"),
		at(40*sec, note(Warning, SubjectPrimaryAgentFailed, p)).with(agentDown(p)), // a new occurrence is notified again
	),
	// Rule 3: agent and database gone together.
	sc("rule3 primary node failed: failover at once", nodeFailed(p)).
		then(at(0, fo(p, s1, 8)).because("primary node 10.0.0.1 failed: lease gone and database unreachable from 10.0.0.2, 10.0.0.3, 10.0.0.4")),
	sc("primary agent gone, db not probed recently: wait", agentDown(p), remoteStale(p)).
		then(at(0).because("waiting"), at(10*sec)),

	// Rule 4: a clean stop of the primary's agent.
	sc("rule4 primary agent stopped cleanly, db reachable: no failover", cleanStop(p)).
		then(at(0, note(Warning, SubjectPrimaryAgentExited, p)).because("primary.shutdown.as.failure=false"), at(10*sec)),
	sc("rule4 primary agent stopped cleanly, db unreachable, shutdown not a failure: no failover", cleanStop(p), remoteDown(p)).
		then(at(0, note(Warning, SubjectPrimaryAgentExited, p)).because("no failover")),
	sc("rule4 primary.shutdown.as.failure, db reachable: no failover", cleanStop(p), settings(func(s *Settings) { s.PrimaryShutdownAsFailure = true })).
		then(at(0, note(Warning, SubjectPrimaryAgentExited, p)).because("reachable from")),
	sc("rule4 primary.shutdown.as.failure, db unreachable: failover", cleanStop(p), remoteDown(p), settings(func(s *Settings) { s.PrimaryShutdownAsFailure = true })).
		then(at(0, fo(p, s1, 8)).because("primary.shutdown.as.failure=true")),

	// Rule 5: standbys and witnesses only notify.
	sc("rule5 standby agent failed, db running: notify only", agentDown(s1)).
		then(at(0, note(Warning, SubjectStandbyAgentFailed, s1)), at(5*sec)),
	sc("rule5 standby node failed: notify only", nodeFailed(s2)).then(at(0, note(Warning, SubjectStandbyFailed, s2))),
	sc("rule5 standby database failed: notify only", dbFailed(s1)).
		then(at(0, note(Warning, SubjectStandbyDBFailed, s1)), at(10*sec).because("healthy")),
	sc("rule5 standby agent cannot reach its database: notify only", localDBDown(s1)).
		then(at(0, note(Warning, SubjectStandbyCannotReach, s1))),
	sc("rule5 standby agent stopped cleanly: notify only", cleanStop(s2)).then(at(0, note(Warning, SubjectStandbyAgentExited, s2))),
	sc("rule5 witness failed: notify only", agentDown(w)).then(at(0, note(Warning, SubjectWitnessFailure, w)), at(1*sec)),
	sc("rule5 witness stopped cleanly: notify only", cleanStop(w)).then(at(0, note(Warning, SubjectWitnessAgentExited, w))),
	sc("rule5 primary node and witness failed: failover, witness notified", nodeFailed(p), agentDown(w),
		func(v *View, _ time.Time) {
			v.Voters = 4
			v.Members["10.0.0.5"] = MemberView{Status: standby("10.0.0.5", lsn0-1)}
		}).
		then(at(0, note(Warning, SubjectWitnessFailure, w), fo(p, s1, 8))),

	// Rule 6: defence in depth against a minority view.
	sc("rule6 no majority: primary node and witness failed, 2 of 4 live", nodeFailed(p), agentDown(w)).
		then(at(0).because("no majority: 2 live of 4 voting members, 3 needed")),
	sc("rule6 voters counts members missing from the view", nodeFailed(p), func(v *View, _ time.Time) { v.Voters = 7 }).
		then(at(0).because("no majority: 3 live of 7")),
	sc("rule6 external etcd: its majority counts, not the agents' (2 of 4 live, no witness needed)", nodeFailed(p), agentDown(w),
		settings(func(s *Settings) { s.ExternalDCS = true })).
		then(at(0, note(Warning, SubjectWitnessFailure, w), fo(p, s1, 8))),

	// Rule 7: candidate choice (finer rows in candidate_test.go).
	sc("rule7 most received WAL wins", nodeFailed(p), received(s2, lsn0+100)).then(at(0, fo(p, s2, 8))),
	sc("rule7 priority.standbys breaks a tie", nodeFailed(p), settings(func(s *Settings) { s.Priority = []string{s2, s1} })).
		then(at(0, fo(p, s2, 8)).because("tied with 10.0.0.2, first in priority.standbys")),
	sc("rule7 address breaks a tie without priority", nodeFailed(p)).then(at(0, fo(p, s1, 8)).because("lower address")),
	sc("rule7 no standby within max.failover.lag of the primary's last position: failover has not occurred", nodeFailed(p),
		func(v *View, _ time.Time) { v.Primary.LastLSN = lsn0 + 32*mib }).then(
		at(0, note(Severe, SubjectFailoverNotOccurred, p)).because("10.0.0.2: 33554432 bytes behind the primary's last position"),
		at(1*sec), // notified once
	),
	sc("rule7 no promotable standby: failover has not occurred", nodeFailed(p), func(v *View, _ time.Time) {
		v.Members[s1].Status.Promotable = false
		v.Members[s2].Status.Type, v.Members[s2].Status.IdleReason = cluster.Idle, "database down at start"
	}).then(at(0, note(Severe, SubjectFailoverNotOccurred, p)).because("10.0.0.2: promotable=false; 10.0.0.3: idle: database down at start")),

	// Rules 8–10: policy switches.
	sc("rule8 auto.failover=false: manual failover required, once", nodeFailed(p), settings(func(s *Settings) { s.AutoFailover = false })).
		then(at(0, note(Warning, SubjectManualFailover, p)).because("promote by hand (10.0.0.2 has the most WAL"), at(1*sec)),
	sc("rule9 minimum.standbys would not be kept: no promotion", nodeFailed(p), settings(func(s *Settings) { s.MinimumStandbys = 2 })).
		then(at(0, note(Severe, SubjectNoStandbys, p)).because("would leave 1 standbys, minimum.standbys is 2")),
	sc("rule9 minimum.standbys kept: failover", nodeFailed(p), settings(func(s *Settings) { s.MinimumStandbys = 1 })).
		then(at(0, fo(p, s1, 8))),
	sc("rule10 maintenance mode: empty plan even with the primary node gone", nodeFailed(p), settings(func(s *Settings) { s.Paused = true })).
		then(at(0).because("maintenance mode")),
	sc("rule10 pause restarts the failure timer").then(
		at(0).with(dbFailed(p)),
		at(3*sec).with(dbFailed(p), settings(func(s *Settings) { s.Paused = true })),
		at(4*sec).with(dbFailed(p)).because("down for 0s"),
		at(6*sec, fo(p, s1, 8)).with(dbFailed(p)),
	),

	// Rule 11: the new epoch.
	sc("rule11 failover names epoch+1", nodeFailed(p), func(v *View, _ time.Time) { v.Epoch, v.Primary.Epoch = 41, 41 }).
		then(at(0, fo(p, s1, 42))),
	sc("primary record epoch disagrees with the cluster's: no failover", nodeFailed(p), func(v *View, _ time.Time) { v.Primary.Epoch = 6 }).
		then(at(0, note(Severe, SubjectStateMismatch, p)).because("primary record has epoch 6, cluster epoch is 7")),
}

func TestStep(t *testing.T) {
	for _, c := range scenarios {
		t.Run(c.name, func(t *testing.T) {
			mem := c.mem
			for i, st := range c.steps {
				now := t0.Add(st.at)
				v := healthy(now)
				for _, e := range append(append([]edit{}, c.edits...), st.edits...) {
					e(&v, now)
				}
				vBefore, mBefore := cloneView(v), cloneMemory(mem)
				plan, next := Step(v, mem, now)
				if !reflect.DeepEqual(v, vBefore) || !reflect.DeepEqual(mem, mBefore) {
					t.Fatalf("step %d (t0+%s): Step mutated its input", i, st.at)
				}
				if got := strs(plan.Actions); !reflect.DeepEqual(got, append([]string{}, st.want...)) {
					t.Errorf("step %d (t0+%s): actions\n got %q\nwant %q\nreason: %s", i, st.at, got, st.want, plan.Reason)
				}
				if !strings.Contains(plan.Reason, st.reason) {
					t.Errorf("step %d (t0+%s): reason %q does not contain %q", i, st.at, plan.Reason, st.reason)
				}
				mem = next
			}
		})
	}
}

// TestStepDoesNotMutateInputs is rule 12, as stolon checks its sentinel:
// deep-copy the inputs, run Step on a failover and on notifications, compare.
func TestStepDoesNotMutateInputs(t *testing.T) {
	for i, e := range []edit{nodeFailed(p), both(dbFailed(p), agentDown(w)), localDBDown(p)} {
		v := healthy(t0)
		e(&v, t0)
		v.Settings.Priority = []string{s2, s1}
		m := Memory{Epoch: 7, PrimaryDBFailingSince: t0.Add(-time.Minute), Notified: map[string]bool{"x|y": true}}
		vBefore, mBefore := cloneView(v), cloneMemory(m)
		plan, next := Step(v, m, t0)
		if !reflect.DeepEqual(v, vBefore) || !reflect.DeepEqual(m, mBefore) {
			t.Fatalf("edit %d: Step mutated its input (plan %v)", i, strs(plan.Actions))
		}
		if len(next.Notified) > 0 {
			next.Notified["poison"] = true
			if m.Notified["poison"] {
				t.Fatal("returned Memory shares its map with the input")
			}
		}
		if len(plan.Actions) == 0 {
			t.Fatalf("edit %d: expected actions, got none: %s", i, plan.Reason)
		}
	}
}

// TestStepMemory checks the timers Step keeps for the coordinator.
func TestStepMemory(t *testing.T) {
	v := healthy(t0)
	agentDown(p)(&v, t0)
	_, m := Step(v, Memory{}, t0)
	if m.Epoch != 7 || !m.PrimaryAgentMissingSince.Equal(t0) || !m.PrimaryDBFailingSince.IsZero() {
		t.Fatalf("after the primary agent left: %+v", m)
	}
	_, m = Step(v, m, t0.Add(time.Second))
	if !m.PrimaryAgentMissingSince.Equal(t0) {
		t.Fatalf("missing-since moved: %+v", m)
	}
	_, m = Step(healthy(t0), m, t0.Add(2*time.Second))
	if !m.PrimaryAgentMissingSince.IsZero() || m.Notified != nil {
		t.Fatalf("after the agent returned: %+v", m)
	}
}
