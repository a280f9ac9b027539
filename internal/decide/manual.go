package decide

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/syncrep"
)

// Request is an operator's `pgfm promote`.
type Request struct {
	// Switchover: a planned swap with no loss; without it, a manual
	// failover that ignores auto.failover.
	Switchover bool
	// Target names the standby to promote; "" picks one: the first of the
	// priority order for a switchover, the best candidate otherwise.
	Target string
	// Force promotes in synchronous mode a standby that may lack
	// acknowledged writes (outside the recorded set, or not certainly the
	// most advanced of it).
	Force bool
}

// Manual decides an operator's promote: the Failover to commit, or an
// error that says why not and what to do. A manual failover takes the same
// candidate rules as an automatic one; a switchover needs a healthy
// primary and a target streaming from it within max.failover.lag.
func Manual(v View, r Request) (Failover, error) {
	p := v.Primary.Node
	if r.Force {
		v.Settings.SyncMode = syncrep.Off
	}
	switch {
	case p == "":
		return Failover{}, fmt.Errorf("the cluster has no primary record yet: wait for the first agent to name its primary")
	case r.Target == p && v.Primary.Phase == cluster.PhasePromoted:
		return Failover{}, fmt.Errorf("%s is the primary already", p)
	}
	if r.Target != "" {
		mv, ok := v.Members[r.Target]
		if !ok {
			return Failover{}, fmt.Errorf("%s is no member of the cluster; members: %s", r.Target, strings.Join(sortedAddrs(v.Members), " "))
		}
		if mv.Witness {
			return Failover{}, fmt.Errorf("%s is a witness: it has no database to promote", r.Target)
		}
	}
	if live, need := liveVoters(v); live < need && !v.Settings.ExternalDCS {
		return Failover{}, fmt.Errorf("no majority: %d live of %d voting members, %d needed", live, votersOf(v), need)
	}
	if v.Primary.Phase != cluster.PhasePromoted {
		return retry(v, r)
	}
	if r.Switchover {
		return switchover(v, r.Target)
	}
	if ps := v.Members[p].Status; ps != nil && ps.Type == cluster.Primary && ps.DB.Up && !ps.DB.InRecovery &&
		v.Settings.SyncMode != "" && v.Settings.SyncMode != syncrep.Off {
		// Until it is fenced the running primary acknowledges writes that
		// any synchronous standby may confirm, not necessarily the chosen one.
		return Failover{}, fmt.Errorf("the primary %s runs: in synchronous mode a manual failover could lose what it acknowledges until it is stopped; use -switchover, which loses nothing (or -force)", p)
	}
	cands := Candidates(v)
	best, err := pick(cands, r.Target)
	if err != nil {
		return Failover{}, err
	}
	if left := standbysLeft(v, best.Node); left < v.Settings.MinimumStandbys {
		return Failover{}, fmt.Errorf("promoting %s would leave %d standbys, minimum.standbys is %d", best.Node, left, v.Settings.MinimumStandbys)
	}
	why := fmt.Sprintf("manual promotion of %s (%s)", best.Node, best.LSN)
	return Failover{From: p, To: best.Node, NewEpoch: v.Epoch + 1, Reason: why}, nil
}

// retry is the way out of a failover that stopped: fence-failed,
// promote-failed, or promoting with the named node's agent gone. The old
// primary was out before the named node could fence or promote, so the
// new epoch replaces the named node (it may have promoted before it
// failed): the new primary waits until that node is not writable. Naming
// the same node again replaces the old primary once more. A promoting
// node whose agent runs is still at work: refused.
func retry(v View, r Request) (Failover, error) {
	named, old := v.Primary.Node, v.Primary.Previous
	switch {
	case r.Switchover:
		return Failover{}, fmt.Errorf("a failover to %s is %s (epoch %d): a switchover needs a running primary; use promote without -switchover", named, v.Primary.Phase, v.Primary.Epoch)
	case v.Primary.Phase == cluster.PhasePromoting && v.Members[named].Status != nil:
		return Failover{}, fmt.Errorf("a failover to %s is under way (epoch %d, promoting); wait for it to end", named, v.Primary.Epoch)
	case old == "":
		return Failover{}, fmt.Errorf("the primary record names %s (%s) with no previous primary: nothing to retry", named, v.Primary.Phase)
	}
	// Candidates are judged as followers of the old primary.
	w := v
	w.Primary.Node = old
	best, err := pick(Candidates(w), r.Target)
	if err != nil {
		return Failover{}, err
	}
	from := named
	if best.Node == named {
		from = old
	}
	why := fmt.Sprintf("manual promotion of %s (%s) after the failover to %s ended %s", best.Node, best.LSN, named, v.Primary.Phase)
	return Failover{From: from, To: best.Node, NewEpoch: v.Epoch + 1, Reason: why}, nil
}

// pick is the named candidate, or the best one.
func pick(cands []Candidate, target string) (Candidate, error) {
	for _, c := range cands {
		if target != "" && c.Node != target {
			continue
		}
		if c.Reject != "" && target != "" {
			return c, fmt.Errorf("%s cannot be promoted: %s", c.Node, c.Reject)
		}
		if c.Reject != "" {
			break
		}
		return c, nil
	}
	return Candidate{}, fmt.Errorf("no standby can be promoted: %s", rejections(cands))
}

// switchover checks the primary is healthy and chooses the target: the
// named one, or the first of the priority order among the standbys that
// can take over without loss.
func switchover(v View, target string) (Failover, error) {
	p := v.Primary.Node
	ps := v.Members[p].Status
	switch {
	case ps == nil:
		return Failover{}, fmt.Errorf("the primary's agent on %s is down: a switchover needs a running primary; use promote without -switchover for a failover", p)
	case ps.Type != cluster.Primary || !ps.DB.Up || ps.DB.InRecovery:
		return Failover{}, fmt.Errorf("the primary %s is not a running primary (agent %s, database up %t, in recovery %t): a switchover needs one; use promote without -switchover for a failover", p, ps.Type, ps.DB.Up, ps.DB.InRecovery)
	}
	var ready []Candidate
	var refused []string
	for _, c := range Candidates(v) {
		if why := notInSync(v, c, ps.DB.CurrentLSN); why != "" {
			if c.Node == target {
				return Failover{}, fmt.Errorf("%s cannot take over without loss: %s", c.Node, why)
			}
			refused = append(refused, c.Node+": "+why)
			continue
		}
		ready = append(ready, c)
	}
	if len(ready) == 0 {
		if len(refused) == 0 {
			refused = []string{"no standby in the cluster"}
		}
		return Failover{}, fmt.Errorf("no standby can take over without loss: %s", strings.Join(refused, "; "))
	}
	// The priority order decides, not the WAL held: every one of them
	// replays up to the old primary's last record before it is promoted.
	slices.SortStableFunc(ready, func(a, b Candidate) int {
		if a.Priority != b.Priority && (a.Priority < 0 || b.Priority < 0) {
			return boolFirst(a.Priority >= 0)
		}
		return a.Priority - b.Priority
	})
	to := ready[0]
	if target != "" {
		i := slices.IndexFunc(ready, func(c Candidate) bool { return c.Node == target })
		to = ready[i]
	}
	why := fmt.Sprintf("switchover from %s to %s", p, to.Node)
	return Failover{From: p, To: to.Node, NewEpoch: v.Epoch + 1, Reason: why, Switchover: true}, nil
}

// notInSync says why candidate c cannot take over from a running primary
// at position cur without loss; "" when it can.
func notInSync(v View, c Candidate, cur cluster.LSN) string {
	if c.Reject != "" {
		return c.Reject
	}
	st := v.Members[c.Node].Status
	if !st.DB.Up && st.DB.Error != "" {
		return "its database does not answer: " + st.DB.Error
	}
	if st.DB.WalReceiver != "streaming" || st.DB.SenderHost != v.Primary.Node {
		return fmt.Sprintf("not streaming from %s", v.Primary.Node)
	}
	if lag := behind(cur, c.LSN); lag > v.Settings.MaxFailoverLag {
		return fmt.Sprintf("%d bytes behind the primary, over max.failover.lag %d", lag, v.Settings.MaxFailoverLag)
	}
	return ""
}
