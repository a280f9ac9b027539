package decide

import (
	"fmt"
	"slices"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// memberNotes reports failed standbys and witnesses. They never cause a
// failover: only the primary's failure does.
func memberNotes(v View, now time.Time) []Notify {
	var notes []Notify
	for _, addr := range sortedAddrs(v.Members) {
		if addr == v.Primary.Node {
			continue
		}
		if n, ok := memberNote(v, addr, now); ok {
			notes = append(notes, n)
		}
	}
	return notes
}

func memberNote(v View, addr string, now time.Time) (Notify, bool) {
	mv := v.Members[addr]
	st := mv.Status
	witness := mv.Witness || (st != nil && st.Type == cluster.Witness)
	switch {
	case st == nil && witness && mv.CleanStop:
		return Notify{Warning, SubjectWitnessAgentExited, addr, "witness agent " + addr + " stopped cleanly"}, true
	case st == nil && witness:
		return Notify{Warning, SubjectWitnessFailure, addr, "witness agent " + addr + " lost its lease"}, true
	case st == nil && mv.CleanStop:
		return Notify{Warning, SubjectStandbyAgentExited, addr, "standby agent " + addr + " stopped cleanly"}, true
	}
	r := reachOf(v, addr, now)
	switch {
	case st == nil && r.unreachable():
		return Notify{Warning, SubjectStandbyFailed, addr, fmt.Sprintf("standby agent %s lost its lease and its database is %s", addr, r)}, true
	case st == nil:
		return Notify{Warning, SubjectStandbyAgentFailed, addr, fmt.Sprintf("standby agent %s lost its lease; its database is %s", addr, r)}, true
	case st.Type != cluster.Standby || st.DB.Up:
		return Notify{}, false
	case r.reachable():
		return Notify{Warning, SubjectStandbyCannotReach, addr, fmt.Sprintf("standby agent %s cannot reach its database, which is %s", addr, r)}, true
	default:
		return Notify{Warning, SubjectStandbyDBFailed, addr, fmt.Sprintf("standby database %s down (%s)", addr, st.DB.Error)}, true
	}
}

func sortedAddrs(m map[string]MemberView) []string {
	addrs := make([]string, 0, len(m))
	for a := range m {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, compareAddr)
	return addrs
}
