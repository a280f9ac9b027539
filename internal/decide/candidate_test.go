package decide

import (
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/syncrep"
)

const s3 = "10.0.0.10" // sorts before 10.0.0.2 as text, after 10.0.0.3 as an address

func addStandby(addr string, l cluster.LSN) edit {
	return func(v *View, _ time.Time) { v.Members[addr] = MemberView{Status: standby(addr, l)} }
}

func standbyEdit(addr string, f func(st *cluster.MemberStatus)) edit {
	return func(v *View, _ time.Time) { status(v, addr, f) }
}

// TestCandidates checks rule 7 row by row. Each want entry is "node" for a
// promotable standby or "node ✗ reason-substring" for a rejected one, in
// the order Candidates returns them.
func TestCandidates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []edit
		want  []string
	}{
		{"equal WAL, no priority: numeric address order", []edit{addStandby(s3, lsn0)},
			[]string{s1, s2, s3}},
		{"most received WAL beats address", []edit{addStandby(s3, lsn0+1)},
			[]string{s3, s1, s2}},
		{"most received WAL beats priority", []edit{received(s2, lsn0+1), settings(func(s *Settings) { s.Priority = []string{s1} })},
			[]string{s2, s1}},
		{"priority order breaks a tie", []edit{addStandby(s3, lsn0), settings(func(s *Settings) { s.Priority = []string{s3, s2} })},
			[]string{s3, s2, s1}},
		{"listed in priority beats unlisted", []edit{settings(func(s *Settings) { s.Priority = []string{"192.0.2.99", s2} })},
			[]string{s2, s1}},
		{"agent down", []edit{agentDown(s1)},
			[]string{s2, s1 + " ✗ agent down"}},
		{"idle is never a candidate", []edit{standbyEdit(s1, func(st *cluster.MemberStatus) { st.Type, st.IdleReason = cluster.Idle, "wrong state" })},
			[]string{s2, s1 + " ✗ idle: wrong state"}},
		{"promotable=false", []edit{standbyEdit(s2, func(st *cluster.MemberStatus) { st.Promotable = false })},
			[]string{s1, s2 + " ✗ promotable=false"}},
		{"database down", []edit{localDBDown(s1)},
			[]string{s2, s1 + " ✗ database down"}},
		{"database out of recovery", []edit{standbyEdit(s1, func(st *cluster.MemberStatus) { st.DB.InRecovery = false })},
			[]string{s2, s1 + " ✗ not in recovery"}},
		{"streaming from another host, other timeline: rejected", []edit{standbyEdit(s1, func(st *cluster.MemberStatus) {
			st.DB.SenderHost, st.DB.Timeline = "10.9.9.9", 2
		})}, []string{s2, s1 + " ✗ not streaming from 10.0.0.1"}},
		{"receiver stopped but WAL received on the primary's timeline: eligible", []edit{standbyEdit(s1, func(st *cluster.MemberStatus) {
			st.DB.WalReceiver, st.DB.SenderHost = "", ""
		})}, []string{s1, s2}},
		{"receiver stopped, nothing received by streaming: rejected", []edit{standbyEdit(s1, func(st *cluster.MemberStatus) {
			st.DB.WalReceiver, st.DB.SenderHost, st.DB.ReceiveLSN = "", "", 0
		})}, []string{s2, s1 + " ✗ no WAL received on its timeline 1"}},
		{"exactly max.failover.lag behind the most advanced: eligible", []edit{received(s2, lsn0+16*mib), func(v *View, _ time.Time) { v.Primary.LastLSN = lsn0 + 16*mib }},
			[]string{s2, s1}},
		{"one byte over max.failover.lag behind the most advanced", []edit{received(s2, lsn0+16*mib+1)},
			[]string{s2, s1 + " ✗ 16777217 bytes behind the most advanced standby 10.0.0.3"}},
		{"a non-promotable standby still sets the most advanced position", []edit{received(s2, lsn0+20*mib), standbyEdit(s2, func(st *cluster.MemberStatus) { st.Promotable = false })},
			[]string{s1 + " ✗ behind the most advanced standby 10.0.0.3", s2 + " ✗ promotable=false"}},
		{"all standbys too far behind the primary's last position", []edit{func(v *View, _ time.Time) { v.Primary.LastLSN = lsn0 + 17*mib }},
			[]string{s1 + " ✗ behind the primary's last position", s2 + " ✗ behind the primary's last position"}},
		{"standby ahead of the primary's last published position: eligible", []edit{received(s1, lsn0+40*mib), received(s2, lsn0+39*mib)},
			[]string{s1, s2}},
		{"primary's last position unknown: nobody", []edit{func(v *View, _ time.Time) { v.Primary.LastLSN = 0 }},
			[]string{s1 + " ✗ last position is unknown", s2 + " ✗ last position is unknown"}},
		{"max.failover.lag 0: only the most advanced", []edit{received(s1, lsn0+1), func(v *View, _ time.Time) { v.Primary.LastLSN = lsn0 + 1 }, settings(func(s *Settings) { s.MaxFailoverLag = 0 })},
			[]string{s1, s2 + " ✗ 1 bytes behind"}},
		{"set-priority orders a tie before priority.standbys", []edit{addStandby(s3, lsn0), settings(func(s *Settings) {
			s.Priority = []string{s1}
			s.NodePriority = map[string]int{s3: 2, s2: 1}
		})}, []string{s2, s3, s1}},
		{"set-priority does not beat more WAL", []edit{received(s1, lsn0+1), settings(func(s *Settings) { s.NodePriority = map[string]int{s2: 1} })},
			[]string{s1, s2}},
		{"set-priority 0: never promoted", []edit{settings(func(s *Settings) { s.NodePriority = map[string]int{s1: 0} })},
			[]string{s2, s1 + " ✗ set-priority 0"}},
		{"set-priority above 0 overrides promotable=false", []edit{standbyEdit(s2, func(st *cluster.MemberStatus) { st.Promotable = false }),
			settings(func(s *Settings) { s.NodePriority = map[string]int{s2: 3} })}, []string{s2, s1}},
		// Synchronous mode (package syncrep has the arithmetic).
		{"sync on, no set recorded: nobody", []edit{syncMode(nil)},
			[]string{s1 + " ✗ no synchronous set is recorded yet", s2 + " ✗ no synchronous set is recorded yet"}},
		{"sync on, primary alone: nobody", []edit{syncMode(&syncrep.Set{})},
			[]string{s1 + " ✗ without a synchronous standby", s2 + " ✗ without a synchronous standby"}},
		{"sync on: outside the set is never promoted, even with the most WAL", []edit{syncMode(&syncrep.Set{Members: []string{s1}, Quorum: 1}), received(s2, lsn0+1)},
			[]string{s1, s2 + " ✗ not in the synchronous set ANY 1 (10.0.0.2)"}},
		{"sync on, ANY 1 of both: the one with the most WAL", []edit{syncMode(&syncrep.Set{Members: []string{s1, s2}, Quorum: 1}), received(s2, lsn0+1)},
			[]string{s2, s1 + " ✗ another synchronous standby has more WAL"}},
		{"sync on, ANY 1 of both, one agent down: nobody can be sure", []edit{syncMode(&syncrep.Set{Members: []string{s1, s2}, Quorum: 1}), agentDown(s2)},
			[]string{s1 + " ✗ 1 of the synchronous standbys 10.0.0.2 10.0.0.3 answer", s2 + " ✗ agent down"}},
		{"sync on, ANY 2 of both, one agent down: the other has every write", []edit{syncMode(&syncrep.Set{Members: []string{s1, s2}, Quorum: 2}), agentDown(s2)},
			[]string{s1, s2 + " ✗ agent down"}},
		{"sync off ignores a recorded set", []edit{syncMode(&syncrep.Set{}), settings(func(s *Settings) { s.SyncMode = syncrep.Off })},
			[]string{s1, s2}},
		{"witnesses are not listed", []edit{func(v *View, _ time.Time) { v.Members["10.0.0.9"] = MemberView{Witness: true} }},
			[]string{s1, s2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := healthy(t0)
			for _, e := range tc.edits {
				e(&v, t0)
			}
			got := Candidates(v)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d candidates %+v, want %q", len(got), got, tc.want)
			}
			for i, want := range tc.want {
				node, reject, rejected := strings.Cut(want, " ✗ ")
				c := got[i]
				if c.Node != node || (c.Reject != "") != rejected || !strings.Contains(c.Reject, reject) {
					t.Errorf("candidate %d = %s (reject %q), want %q", i, c.Node, c.Reject, want)
				}
			}
		})
	}
}

func TestCompareAddr(t *testing.T) {
	ordered := []string{"10.0.0.2", "10.0.0.10", "192.168.1.1", "::1", "db-a", "db-b"}
	for i := range ordered {
		for j := range ordered {
			got := compareAddr(ordered[i], ordered[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("compareAddr(%q, %q) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}

// syncMode turns synchronous.mode on with rec as the recorded set.
func syncMode(rec *syncrep.Set) edit {
	return func(v *View, _ time.Time) { v.Settings.SyncMode, v.Sync = syncrep.On, rec }
}
