package node

import (
	"testing"
	"time"
)

// The cases of stop.failed.primary seen in the field: which postmaster
// counts as the one that failed.
func TestStopFailed(t *testing.T) {
	seen := time.Date(2026, 12, 2, 8, 12, 19, 756e6, time.UTC)
	for _, c := range []struct {
		name    string
		enabled bool
		seen    time.Time
		started time.Time
		running bool
		want    bool
	}{
		{"the hung postmaster, running long before the failure", true, seen, seen.Add(-time.Hour), true, true},
		{"stop.failed.primary=false", false, seen, seen.Add(-time.Hour), true, false},
		{"nothing runs", true, seen, time.Time{}, false, false},
		{"no failure seen by this agent", true, time.Time{}, seen.Add(-time.Hour), true, false},
		{"started by an operator after the failure", true, seen, seen.Add(88 * time.Millisecond).Truncate(time.Second), true, false},
		{"started in the second before the failure: too close to tell", true, seen, seen.Add(-500 * time.Millisecond).Truncate(time.Second), true, false},
	} {
		if got := StopFailed(c.enabled, c.seen, c.started, c.running); got != c.want {
			t.Errorf("%s: StopFailed = %v, want %v", c.name, got, c.want)
		}
	}
}
