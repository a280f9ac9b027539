package decide

import (
	"fmt"
	"strings"

	"github.com/pgfm/pgfm/internal/cluster"
)

// failover turns a confirmed primary failure into a Failover action, or into
// the notification saying why there is none.
func failover(v View, failure string) ([]Action, []Notify, string) {
	p := v.Primary.Node
	cands := Candidates(v)
	if len(cands) == 0 || cands[0].Reject != "" {
		why := failure + "; no standby can be promoted: " + rejections(cands)
		return nil, []Notify{{Severe, SubjectFailoverNotOccurred, p, why}}, why
	}
	best := cands[0]
	if left := standbysLeft(v, best.Node); left < v.Settings.MinimumStandbys {
		why := fmt.Sprintf("%s; promoting %s would leave %d standbys, minimum.standbys is %d: no promotion",
			failure, best.Node, left, v.Settings.MinimumStandbys)
		return nil, []Notify{{Severe, SubjectNoStandbys, p, why}}, why
	}
	chosen := fmt.Sprintf("%s has the most WAL (%s)%s", best.Node, best.LSN, runnerUp(cands))
	if !v.Settings.AutoFailover {
		why := fmt.Sprintf("%s; auto.failover=false: promote by hand (%s)", failure, chosen)
		return nil, []Notify{{Warning, SubjectManualFailover, p, why}}, why
	}
	why := failure + "; " + chosen
	return []Action{Failover{From: p, To: best.Node, NewEpoch: v.Epoch + 1, Reason: why}}, nil, why
}

func rejections(cands []Candidate) string {
	if len(cands) == 0 {
		return "no standby in the cluster"
	}
	parts := make([]string, len(cands))
	for i, c := range cands {
		parts[i] = c.Node + ": " + c.Reject
	}
	return strings.Join(parts, "; ")
}

// runnerUp says why the best beat the next promotable candidate when they
// hold the same WAL.
func runnerUp(cands []Candidate) string {
	if len(cands) < 2 || cands[1].Reject != "" || cands[1].LSN != cands[0].LSN {
		return ""
	}
	if cands[0].Priority != cands[1].Priority {
		return ", tied with " + cands[1].Node + ", first in priority.standbys"
	}
	return ", tied with " + cands[1].Node + ", lower address"
}

// standbysLeft counts the live standbys with their database up that would
// remain beside the new primary.
func standbysLeft(v View, promoted string) int {
	n := 0
	for addr, mv := range v.Members {
		st := mv.Status
		if addr == v.Primary.Node || addr == promoted || st == nil {
			continue
		}
		if st.Type == cluster.Standby && st.DB.Up {
			n++
		}
	}
	return n
}
