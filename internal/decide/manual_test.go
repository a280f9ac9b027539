package decide

import (
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/syncrep"
)

// stuck: a failover from the primary p to s1 stopped in phase ph; p is
// down.
func stuck(ph cluster.Phase) edit {
	return func(v *View, now time.Time) {
		nodeFailed(p)(v, now)
		v.Primary = PrimaryRecord{Node: s1, Previous: p, Epoch: 8, Phase: ph, Timeline: 1, LastLSN: lsn0}
		v.Epoch = 8
	}
}

// TestManual checks `pgfm promote` and `pgfm promote -switchover` row by
// row: want is "from -> to" (with " switchover" for a switchover), or
// "✗ " and a substring of the refusal.
func TestManual(t *testing.T) {
	promoted := func(v *View) { v.Primary.Phase = cluster.PhasePromoted }
	for _, tc := range []struct {
		name  string
		req   Request
		edits []edit
		want  string
	}{
		{"manual failover picks the most WAL", Request{}, []edit{received(s2, lsn0+1)}, p + " -> " + s2},
		{"manual failover ignores auto.failover", Request{}, []edit{settings(func(s *Settings) { s.AutoFailover = false })}, p + " -> " + s1},
		{"manual failover with a dead primary", Request{}, []edit{nodeFailed(p)}, p + " -> " + s1},
		{"manual failover to a named standby", Request{Target: s2}, nil, p + " -> " + s2},
		{"named standby that cannot be promoted", Request{Target: s2}, []edit{localDBDown(s2)}, "✗ 10.0.0.3 cannot be promoted: database down"},
		{"named node is no member", Request{Target: "10.0.0.99"}, nil, "✗ 10.0.0.99 is no member"},
		{"named node is a witness", Request{Target: w}, nil, "✗ is a witness"},
		{"named node is the primary", Request{Target: p}, nil, "✗ is the primary already"},
		{"manual failover keeps minimum.standbys", Request{}, []edit{settings(func(s *Settings) { s.MinimumStandbys = 2 })}, "✗ minimum.standbys is 2"},
		{"no standby can be promoted", Request{}, []edit{localDBDown(s1), localDBDown(s2)}, "✗ no standby can be promoted"},
		{"switchover: first of the priority order, not the most WAL", Request{Switchover: true},
			[]edit{received(s1, lsn0+1), settings(func(s *Settings) { s.NodePriority = map[string]int{s2: 1} })}, p + " -> " + s2 + " switchover"},
		{"switchover without priorities: the best candidate", Request{Switchover: true}, []edit{received(s2, lsn0+1)}, p + " -> " + s2 + " switchover"},
		{"switchover to a named standby", Request{Switchover: true, Target: s2}, nil, p + " -> " + s2 + " switchover"},
		{"switchover skips a standby not streaming", Request{Switchover: true}, []edit{standbyEdit(s1, func(st *cluster.MemberStatus) { st.DB.WalReceiver = "" })}, p + " -> " + s2 + " switchover"},
		{"switchover to a named standby not streaming", Request{Switchover: true, Target: s1}, []edit{standbyEdit(s1, func(st *cluster.MemberStatus) { st.DB.WalReceiver = "" })}, "✗ 10.0.0.2 cannot take over without loss: not streaming from 10.0.0.1"},
		{"switchover: standby lagging over max.failover.lag", Request{Switchover: true}, []edit{standbyEdit(p, func(st *cluster.MemberStatus) { st.DB.CurrentLSN = lsn0 + 17*mib })}, "✗ no standby can take over without loss"},
		{"switchover with the primary's agent down", Request{Switchover: true}, []edit{agentDown(p)}, "✗ the primary's agent on 10.0.0.1 is down"},
		{"switchover with the primary's database down", Request{Switchover: true}, []edit{localDBDown(p)}, "✗ is not a running primary"},
		{"refused while a failover is under way", Request{}, []edit{stuck(cluster.PhasePromoting)}, "✗ a failover to 10.0.0.2 is under way"},
		{"promoting node's agent gone: the other standby replaces it", Request{}, []edit{stuck(cluster.PhasePromoting), agentDown(s1), func(v *View, _ time.Time) { v.Voters = 3 }}, s1 + " -> " + s2},
		{"promoting node's agent gone, no majority left: refused", Request{}, []edit{stuck(cluster.PhasePromoting), agentDown(s1)}, "✗ no majority"},
		{"fence-failed: the named standby again, replacing the old primary", Request{Target: s1}, []edit{stuck(cluster.PhaseFenceFailed)}, p + " -> " + s1},
		{"fence-failed: the best standby", Request{}, []edit{stuck(cluster.PhaseFenceFailed), received(s2, lsn0+1)}, s1 + " -> " + s2},
		{"promote-failed: another standby replaces the named one", Request{Target: s2}, []edit{stuck(cluster.PhasePromoteFailed)}, s1 + " -> " + s2},
		{"fence-failed: no switchover", Request{Switchover: true}, []edit{stuck(cluster.PhaseFenceFailed)}, "✗ a switchover needs a running primary"},
		{"refused without a majority", Request{}, []edit{agentDown(s1), agentDown(s2), agentDown(w)}, "✗ no majority"},
		{"sync: manual failover with the primary running: refused", Request{}, []edit{syncMode(&syncrep.Set{Members: []string{s1, s2}, Quorum: 1})}, "✗ use -switchover, which loses nothing"},
		{"sync: -force with the primary running", Request{Force: true}, []edit{syncMode(&syncrep.Set{Members: []string{s1, s2}, Quorum: 1})}, p + " -> " + s1},
		{"sync: manual failover with a dead primary, from the set", Request{}, []edit{syncMode(&syncrep.Set{Members: []string{s2}, Quorum: 1}), nodeFailed(p)}, p + " -> " + s2},
		{"sync: named standby outside the set", Request{Target: s1}, []edit{syncMode(&syncrep.Set{Members: []string{s2}, Quorum: 1}), nodeFailed(p)}, "✗ not in the synchronous set"},
		{"sync: switchover to a standby of the set", Request{Switchover: true, Target: s2}, []edit{syncMode(&syncrep.Set{Members: []string{s1, s2}, Quorum: 1})}, p + " -> " + s2 + " switchover"},
		{"sync: switchover to a standby outside the set", Request{Switchover: true, Target: s2}, []edit{syncMode(&syncrep.Set{Members: []string{s1}, Quorum: 1})}, "✗ not in the synchronous set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := healthy(t0)
			promoted(&v)
			for _, e := range tc.edits {
				e(&v, t0)
			}
			f, err := Manual(v, tc.req)
			got := f.From + " -> " + f.To
			if f.Switchover {
				got += " switchover"
			}
			if err != nil {
				got = "✗ " + err.Error()
			}
			if want, refused := strings.CutPrefix(tc.want, "✗ "); refused {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %q, want a refusal containing %q", got, want)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if f.NewEpoch != v.Epoch+1 {
				t.Fatalf("new epoch %d, want %d", f.NewEpoch, v.Epoch+1)
			}
		})
	}
}
