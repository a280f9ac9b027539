package decide

import (
	"fmt"
	"time"
)

// verdict is the assessment of the primary.
type verdict struct {
	failed bool // the primary must be replaced
	reason string
	notes  []Notify
}

// assessPrimary decides whether the primary has failed, keeping the
// failure timers in mem.
func assessPrimary(v View, now time.Time, mem *Memory) verdict {
	p := v.Primary.Node
	mv := v.Members[p]
	r := reachOf(v, p, now)
	if mv.Status == nil {
		mem.PrimaryDBFailingSince = time.Time{}
		if mem.PrimaryAgentMissingSince.IsZero() {
			mem.PrimaryAgentMissingSince = now
		}
		return primaryAgentGone(v.Settings, p, mv.CleanStop, r)
	}
	mem.PrimaryAgentMissingSince = time.Time{}
	if mv.Status.DB.Up {
		mem.PrimaryDBFailingSince = time.Time{}
		return verdict{reason: fmt.Sprintf("primary %s healthy", p)}
	}
	if now.Before(mv.Status.RestartingUntil) {
		if mem.PrimaryDBFailingSince.IsZero() {
			mem.PrimaryDBFailingSince = now // the restart counts towards local.timeout.final
		}
		return verdict{reason: fmt.Sprintf("primary %s is restarting its database locally until %s (primary.restart.timeout): waiting", p, mv.Status.RestartingUntil.Format(time.RFC3339))}
	}
	return primaryDBDown(v.Settings, p, r, now, mem, mv.Status.PostmasterGone)
}

// primaryAgentGone: the primary's lease is gone. Only its database being
// unreachable by every agent that probed it is a failure (EFM: "primary
// node down"); a clean stop is not, unless primary.shutdown.as.failure.
func primaryAgentGone(s Settings, p string, clean bool, r reach) verdict {
	switch {
	case clean && !s.PrimaryShutdownAsFailure:
		why := fmt.Sprintf("primary agent %s stopped cleanly (database %s); primary.shutdown.as.failure=false: no failover", p, r)
		return verdict{reason: why, notes: []Notify{{Warning, SubjectPrimaryAgentExited, p, why}}}
	case clean && r.reachable():
		why := fmt.Sprintf("primary agent %s stopped cleanly but its database is %s: no failover", p, r)
		return verdict{reason: why, notes: []Notify{{Warning, SubjectPrimaryAgentExited, p, why}}}
	case r.reachable():
		why := fmt.Sprintf("primary agent %s failed but its database is %s: no failover until the agent returns", p, r)
		return verdict{reason: why, notes: []Notify{{Warning, SubjectPrimaryAgentFailed, p, why}}}
	case !r.unreachable():
		return verdict{reason: fmt.Sprintf("primary agent %s gone, its database %s: waiting", p, r)}
	case clean:
		return verdict{failed: true, reason: fmt.Sprintf("primary agent %s stopped cleanly and its database is %s (primary.shutdown.as.failure=true)", p, r)}
	default:
		return verdict{failed: true, reason: fmt.Sprintf("primary node %s failed: lease gone and database %s", p, r)}
	}
}

// primaryDBDown: the primary's own agent reports its database down. It is a
// failure once that has lasted local.timeout.final with no other agent
// reaching the database, and other agents confirm (EFM: "primary DB down").
//
// A postmaster known to be gone (its process no longer exists) needs no
// timeout to believe: that is the fast path for a killed or crashed
// postmaster, as long as no other agent reaches the database.
func primaryDBDown(s Settings, p string, r reach, now time.Time, mem *Memory, gone bool) verdict {
	if r.reachable() {
		mem.PrimaryDBFailingSince = time.Time{}
		why := fmt.Sprintf("primary agent %s cannot reach its database, which is %s: no failover", p, r)
		return verdict{reason: why, notes: []Notify{{Warning, SubjectPrimaryCannotPing, p, why}}}
	}
	if mem.PrimaryDBFailingSince.IsZero() {
		mem.PrimaryDBFailingSince = now
	}
	down := now.Sub(mem.PrimaryDBFailingSince)
	switch {
	case gone && r.unreachable():
		return verdict{failed: true, reason: fmt.Sprintf("primary database %s failed: its postmaster is gone and %s", p, r)}
	case down < s.LocalTimeoutFinal:
		return verdict{reason: fmt.Sprintf("primary database %s down for %s of local.timeout.final %s: waiting", p, down, s.LocalTimeoutFinal)}
	case !r.unreachable():
		return verdict{reason: fmt.Sprintf("primary database %s down for %s, %s: waiting", p, down, r)}
	}
	return verdict{failed: true, reason: fmt.Sprintf("primary database %s failed: down for %s and %s", p, down, r)}
}
