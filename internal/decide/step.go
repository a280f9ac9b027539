package decide

import (
	"fmt"
	"time"
)

// Step decides what the cluster should do now. It never mutates v or m;
// the returned Memory is the one to pass to the next call.
func Step(v View, m Memory, now time.Time) (Plan, Memory) {
	next := m.clone()
	if v.Settings.Paused {
		next.PrimaryDBFailingSince = time.Time{}
		return Plan{Reason: "maintenance mode: no automatic failover"}, next
	}
	if live, need := liveVoters(v); live < need && !v.Settings.ExternalDCS {
		return Plan{Reason: fmt.Sprintf("no majority: %d live of %d voting members, %d needed: no failover", live, votersOf(v), need)}, next
	}
	if next.Epoch != v.Epoch {
		next = Memory{Epoch: v.Epoch, Notified: next.Notified}
	}
	notes := memberNotes(v, now)
	var actions []Action
	reason := "no primary named: nothing to watch"
	switch {
	case v.Primary.Node != "" && v.Primary.Epoch != v.Epoch:
		reason = fmt.Sprintf("primary record has epoch %d, cluster epoch is %d: no failover", v.Primary.Epoch, v.Epoch)
		notes = append(notes, Notify{Severe, SubjectStateMismatch, v.Primary.Node, reason})
	case v.Primary.Node != "":
		vd := assessPrimary(v, now, &next)
		notes = append(notes, vd.notes...)
		reason = vd.reason
		if vd.failed {
			var more []Notify
			actions, more, reason = failover(v, vd.reason)
			notes = append(notes, more...)
		}
	}
	plan := Plan{Actions: notifyOnce(notes, m.Notified, &next), Reason: reason}
	plan.Actions = append(plan.Actions, actions...)
	return plan, next
}

func votersOf(v View) int {
	if v.Voters > 0 {
		return v.Voters
	}
	return len(v.Members)
}

// liveVoters counts members holding a lease against the strict majority of
// voters. The coordinator won an election, so it is on the majority side;
// this is defence in depth against a stale or partial view.
func liveVoters(v View) (live, need int) {
	for _, mv := range v.Members {
		if mv.Status != nil {
			live++
		}
	}
	return live, votersOf(v)/2 + 1
}

// notifyOnce keeps the notifications whose condition is new since the last
// Step and remembers every condition that holds now, so a condition that
// clears and comes back is notified again.
func notifyOnce(notes []Notify, before map[string]bool, next *Memory) []Action {
	var out []Action
	holding := map[string]bool{}
	for _, n := range notes {
		k := n.key()
		if !before[k] && !holding[k] {
			out = append(out, n)
		}
		holding[k] = true
	}
	next.Notified = nil
	if len(holding) > 0 {
		next.Notified = holding
	}
	return out
}
