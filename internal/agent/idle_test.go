package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

func TestNextIdle(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	up := cluster.DBObservation{Up: true}
	standby := cluster.DBObservation{Up: true, InRecovery: true}
	down := cluster.DBObservation{Error: "connection refused"}
	sticky := &idleState{Reason: "earlier", Since: now.Add(-time.Hour)}
	for _, tc := range []struct {
		name        string
		prev        *idleState
		first       bool
		obs         cluster.DBObservation
		wantPrimary bool
		want        string // "" = not idle
		startup     bool
	}{
		{"healthy standby", nil, false, standby, false, "", false},
		{"healthy primary", nil, false, up, true, "", false},
		{"down at start", nil, true, down, false, "not running when the agent started: connection refused", true},
		{"failed later", nil, false, down, false, "local database failed: connection refused", false},
		{"primary in recovery", nil, false, standby, true, "wrong state", false},
		{"idle is sticky after the database is back", sticky, false, standby, false, "earlier", false},
		{"a standby that is up at start is not idle", nil, true, standby, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextIdle(tc.prev, tc.first, tc.obs, tc.wantPrimary, now)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("idle %+v, want not idle", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Reason, tc.want) || got.Startup != tc.startup):
				t.Fatalf("idle %+v, want reason containing %q, startup %v", got, tc.want, tc.startup)
			}
		})
	}
}

func TestRightState(t *testing.T) {
	for _, tc := range []struct {
		name        string
		obs         cluster.DBObservation
		wantPrimary bool
		err         string
	}{
		{"standby in recovery", cluster.DBObservation{Up: true, InRecovery: true}, false, ""},
		{"primary writable", cluster.DBObservation{Up: true}, true, ""},
		{"down", cluster.DBObservation{Error: "refused"}, false, "start it first"},
		{"primary in recovery", cluster.DBObservation{Up: true, InRecovery: true}, true, "in recovery"},
		{"writable standby", cluster.DBObservation{Up: true}, false, "make it a standby"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rightState(tc.obs, tc.wantPrimary)
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("rightState = %v, want %q", err, tc.err)
			}
		})
	}
}
