package config

import (
	"testing"
	"time"
)

func TestRidesOutElection(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name            string
		nodeTimeout, et time.Duration
		ok              bool
		need            time.Duration
	}{
		{"defaults: 5 s lease, 1 s election", 5 * s, 1 * s, true, 5 * s},
		{"4 s lease, 1 s election: 2.2 s left", 4 * s, 1 * s, true, 4 * s},
		{"3 s lease, 1 s election: 1.65 s left", 3 * s, 1 * s, false, 4 * s},
		{"3 s lease, 0.5 s election", 3 * s, s / 2, true, 3 * s},
		{"fast profile: 1 s lease, 0.5 s election", 1 * s, s / 2, false, 2 * s},
		{"10 s election needs 15 s at least (etcd) and more", 15 * s, 10 * s, false, 27 * s},
	} {
		ok, need := ridesOutElection(c.nodeTimeout, c.et)
		if ok != c.ok || need != c.need {
			t.Errorf("%s: ridesOutElection(%s, %s) = %v, %s; want %v, %s", c.name, c.nodeTimeout, c.et, ok, need, c.ok, c.need)
		}
	}
}
