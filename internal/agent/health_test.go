package agent

import (
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/httpapi"
)

func TestHealthOf(t *testing.T) {
	const self, other = "10.0.0.1", "10.0.0.2"
	writable := cluster.MemberStatus{Type: cluster.Primary, DB: cluster.DBObservation{Up: true, CurrentLSN: 0x5000000}}
	standby := cluster.MemberStatus{Type: cluster.Standby, DB: cluster.DBObservation{
		Up: true, InRecovery: true, ReceiveLSN: 0x4FFF000, ReplayLSN: 0x4FF0000, WalReceiver: "streaming"}}
	promoted := dcs.Primary{Node: self, Epoch: 3, Phase: dcs.PhasePromoted, LastLSN: 0x5000000}
	cases := []struct {
		name    string
		witness bool
		st      cluster.MemberStatus
		rec     dcs.Primary
		lease   bool
		primary bool
		lag     int64
		known   bool
	}{
		{"named promoted primary, lease valid", false, writable, promoted, true, true, 0, false},
		{"named primary, lease not valid", false, writable, promoted, false, false, 0, false},
		{"named but still promoting", false, writable, healthWith(promoted, func(p *dcs.Primary) { p.Phase = dcs.PhasePromoting }), true, false, 0, false},
		{"fence failed", false, writable, healthWith(promoted, func(p *dcs.Primary) { p.Phase = dcs.PhaseFenceFailed }), true, false, 0, false},
		{"record names another node", false, writable, healthWith(promoted, func(p *dcs.Primary) { p.Node = other }), true, false, 0, false},
		{"no record seen yet", false, writable, dcs.Primary{}, true, false, 0, false},
		{"database down", false, healthWith(writable, func(s *cluster.MemberStatus) { s.DB.Up = false; s.Type = cluster.Idle }), promoted, true, false, 0, false},
		{"in recovery", false, healthWith(writable, func(s *cluster.MemberStatus) { s.DB.InRecovery = true }), promoted, true, false, 0, false},
		{"idle agent on the writable named primary", false, healthWith(writable, func(s *cluster.MemberStatus) { s.Type = cluster.Idle }), promoted, true, true, 0, false},
		{"standby lag", false, standby, healthWith(promoted, func(p *dcs.Primary) { p.Node = other }), true, false, 0x10000, true},
		{"standby ahead of the published position", false, standby, healthWith(promoted, func(p *dcs.Primary) { p.Node, p.LastLSN = other, 0x4000000 }), true, false, 0, true},
		{"standby, primary published no position", false, standby, healthWith(promoted, func(p *dcs.Primary) { p.Node, p.LastLSN = other, 0 }), true, false, 0, false},
		{"standby, nothing replayed", false, healthWith(standby, func(s *cluster.MemberStatus) { s.DB.ReplayLSN = 0 }), healthWith(promoted, func(p *dcs.Primary) { p.Node = other }), true, false, 0, false},
		{"witness", true, cluster.MemberStatus{Type: cluster.Witness}, healthWith(promoted, func(p *dcs.Primary) { p.Node = other }), true, false, 0, false},
		{"witness before its first observation", true, cluster.MemberStatus{}, promoted, true, false, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := healthOf(self, tc.witness, tc.st, tc.rec, tc.lease)
			if h.Primary != tc.primary || h.LagBytes != tc.lag || h.LagKnown != tc.known || h.HoldsLease != tc.lease {
				t.Errorf("healthOf = %+v, want Primary=%v LagBytes=%d LagKnown=%v HoldsLease=%v", h, tc.primary, tc.lag, tc.known, tc.lease)
			}
			if tc.witness && (h.Type != cluster.Witness || h.DBUp) {
				t.Errorf("witness: %+v", h)
			}
			if !tc.witness && (h.Type != tc.st.Type || h.DBUp != tc.st.DB.Up || h.InRecovery != tc.st.DB.InRecovery || h.WalReceiver != tc.st.DB.WalReceiver) {
				t.Errorf("healthOf = %+v does not carry the observation %+v", h, tc.st)
			}
		})
	}
}

func healthWith[T any](v T, fn func(*T)) T {
	fn(&v)
	return v
}

// TestAgentHealthLease: Health reads the lease's validity at the time of
// the request, and a lost lease (a.live nil, a.lease kept for the
// fence loop) is no lease.
func TestAgentHealthLease(t *testing.T) {
	a := &Agent{cfg: config.Config{}, self: "10.0.0.1"}
	a.status = cluster.MemberStatus{Type: cluster.Primary, DB: cluster.DBObservation{Up: true}}
	a.primary = dcs.Primary{Node: "10.0.0.1", Phase: dcs.PhasePromoted}
	now := time.Now()
	l := dcs.LeaseUntil(now.Add(time.Second))
	a.live, a.lease = l, l

	check := func(at time.Time, want bool) {
		t.Helper()
		if h := a.health(at); h.Primary != want || h.HoldsLease != want {
			t.Errorf("health at %v = %+v, want Primary and HoldsLease %v", at.Sub(now), h, want)
		}
	}
	check(now, true)
	check(now.Add(time.Second), false) // valid strictly before validUntil
	a.live = nil
	check(now, false)

	// Health never blocks on anything but the agent's mutex.
	a.live = l
	done := make(chan httpapi.Health, 1)
	go func() { done <- a.Health() }()
	select {
	case h := <-done:
		if !h.Primary {
			t.Errorf("Health() = %+v, want Primary", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Health() blocked")
	}
}
