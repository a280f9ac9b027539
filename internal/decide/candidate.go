package decide

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/syncrep"
)

// Candidate is one standby considered for promotion.
type Candidate struct {
	Node string
	LSN  cluster.LSN // WAL received (or replayed), as its agent last published
	// Priority ranks the candidate in the priority order: set-priority
	// values first (1 before 2), then priority.standbys' order; -1 when
	// neither lists it.
	Priority int
	Reject   string // why it cannot be promoted; "" when it can
}

// Candidates lists every standby of v with its verdict: the promotable ones
// first, best first (most WAL, then priority order, then address), then the
// rejected ones by address. Witnesses and the primary are not listed.
func Candidates(v View) []Candidate {
	head, headLSN := mostAdvanced(v)
	syncOK, syncWhy := lossless(v)
	var out []Candidate
	for addr, mv := range v.Members {
		if addr == v.Primary.Node || mv.Witness || (mv.Status != nil && mv.Status.Type == cluster.Witness) {
			continue
		}
		c := Candidate{Node: addr, Priority: rank(v.Settings, addr)}
		if mv.Status != nil {
			c.LSN = mv.Status.DB.LSN()
		}
		c.Reject = rejectFollower(v.Primary, mv.Status)
		if c.Reject == "" && syncOK != nil && !syncOK[addr] {
			c.Reject = syncReject(v, addr, syncWhy)
		}
		if c.Reject == "" {
			c.Reject = rejectCandidate(v, mv.Status, c.LSN, head, headLSN)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, compareCandidates)
	return out
}

// lossless is, in synchronous mode, the set of standbys that certainly
// hold every acknowledged write (possibly empty) and why the others do
// not; nil outside synchronous mode.
func lossless(v View) (map[string]bool, string) {
	if v.Settings.SyncMode == "" || v.Settings.SyncMode == syncrep.Off {
		return nil, ""
	}
	if v.Sync == nil {
		return map[string]bool{}, fmt.Sprintf("synchronous.mode=%s and no synchronous set is recorded yet: the primary has not confirmed one, so no standby is certain to have every acknowledged write", v.Settings.SyncMode)
	}
	seen := map[string]cluster.LSN{}
	for addr, mv := range v.Members {
		if st := mv.Status; st != nil && st.DB.Up && st.DB.InRecovery && addr != v.Primary.Node {
			seen[addr] = st.DB.LSN()
		}
	}
	best, why := syncrep.Lossless(*v.Sync, seen)
	ok := map[string]bool{}
	for _, b := range best {
		ok[b] = true
	}
	return ok, why
}

// syncReject says why addr is not one of the lossless standbys.
func syncReject(v View, addr, why string) string {
	switch {
	case why != "":
		return "synchronous mode: " + why
	case !slices.Contains(v.Sync.Members, addr):
		return fmt.Sprintf("synchronous mode: not in the synchronous set %s, so it may lack acknowledged writes", v.Sync)
	}
	return "synchronous mode: another synchronous standby has more WAL, so this one may lack acknowledged writes"
}

// rejectFollower says why st is not a live standby that was following the
// primary p: streaming from it at the last observation, or holding WAL
// received on its timeline.
func rejectFollower(p PrimaryRecord, st *cluster.MemberStatus) string {
	switch {
	case st == nil:
		return "agent down"
	case st.Type == cluster.Idle:
		return strings.TrimSuffix("idle: "+st.IdleReason, ": ")
	case st.Type != cluster.Standby:
		return fmt.Sprintf("agent type %s, not a standby", st.Type)
	case !st.DB.Up:
		return "database down"
	case !st.DB.InRecovery:
		return "database not in recovery"
	}
	streaming := st.DB.WalReceiver == "streaming" && st.DB.SenderHost == p.Node
	onTimeline := p.Timeline != 0 && st.DB.Timeline == p.Timeline && st.DB.ReceiveLSN != 0
	if !streaming && !onTimeline {
		return fmt.Sprintf("not streaming from %s and no WAL received on its timeline %d", p.Node, p.Timeline)
	}
	return ""
}

// rejectCandidate applies the promotion rules to a follower: promotable,
// and within max.failover.lag of both the most advanced follower and the
// primary's last published position.
func rejectCandidate(v View, st *cluster.MemberStatus, lsn cluster.LSN, head string, headLSN cluster.LSN) string {
	lag := v.Settings.MaxFailoverLag
	last := v.Primary.LastLSN
	switch {
	case v.Settings.NodePriority[st.Address] == 0 && hasNodePriority(v.Settings, st.Address):
		return "set-priority 0: never promoted"
	case !st.Promotable && v.Settings.NodePriority[st.Address] <= 0:
		return "promotable=false"
	case behind(headLSN, lsn) > lag:
		return fmt.Sprintf("%d bytes behind the most advanced standby %s (%s), over max.failover.lag %d", behind(headLSN, lsn), head, headLSN, lag)
	case last == 0:
		return "the primary's last position is unknown, so its lag cannot be bounded"
	case behind(last, lsn) > lag:
		return fmt.Sprintf("%d bytes behind the primary's last position %s, over max.failover.lag %d", behind(last, lsn), last, lag)
	}
	return ""
}

// listedLast offsets priority.standbys' ranks after every set-priority
// value.
const listedLast = 1 << 30

// rank is addr's place in the priority order: set-priority values first,
// then priority.standbys' order; -1 when neither lists it.
func rank(s Settings, addr string) int {
	if p, ok := s.NodePriority[addr]; ok && p > 0 {
		return min(p-1, listedLast-1)
	}
	if i := slices.Index(s.Priority, addr); i >= 0 {
		return listedLast + i
	}
	return -1
}

func hasNodePriority(s Settings, addr string) bool {
	_, ok := s.NodePriority[addr]
	return ok
}

// mostAdvanced is the follower with the most WAL, promotable or not.
func mostAdvanced(v View) (string, cluster.LSN) {
	var node string
	var best cluster.LSN
	for _, addr := range sortedAddrs(v.Members) {
		st := v.Members[addr].Status
		if addr == v.Primary.Node || rejectFollower(v.Primary, st) != "" {
			continue
		}
		if l := st.DB.LSN(); node == "" || l > best {
			node, best = addr, l
		}
	}
	return node, best
}

func behind(ahead, l cluster.LSN) uint64 {
	if l >= ahead {
		return 0
	}
	return uint64(ahead - l)
}

// compareCandidates orders promotable before rejected; among promotable:
// most WAL, then listed in priority order before unlisted, then address.
func compareCandidates(a, b Candidate) int {
	if (a.Reject == "") != (b.Reject == "") {
		return boolFirst(a.Reject == "")
	}
	if a.Reject == "" && a.LSN != b.LSN {
		return boolFirst(a.LSN > b.LSN)
	}
	if a.Reject == "" && a.Priority != b.Priority {
		if a.Priority < 0 || b.Priority < 0 {
			return boolFirst(a.Priority >= 0)
		}
		return a.Priority - b.Priority
	}
	return compareAddr(a.Node, b.Node)
}

func boolFirst(aFirst bool) int {
	if aFirst {
		return -1
	}
	return 1
}

// compareAddr orders IP addresses numerically, before anything that is not
// an IP address, which sorts as text.
func compareAddr(a, b string) int {
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	switch {
	case errA == nil && errB == nil:
		return ia.Compare(ib)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}
