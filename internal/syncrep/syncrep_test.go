package syncrep

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/cluster"
)

func set(k int, m ...string) Set { return Set{Members: m, Quorum: k} }

func TestWant(t *testing.T) {
	for _, c := range []struct {
		name    string
		mode    string
		count   int
		healthy []string
		current Set
		want    Set
	}{
		{"off waits for nobody", Off, 1, []string{"a"}, set(1, "a"), Set{}},
		{"on: every healthy standby, sorted", On, 1, []string{"b", "a"}, Set{}, set(1, "a", "b")},
		{"on: a failed standby leaves", On, 1, []string{"b"}, set(1, "a", "b"), set(1, "b")},
		{"on: none healthy, the primary goes on alone", On, 1, nil, set(1, "a"), Set{}},
		{"on: the quorum shrinks to the healthy ones", On, 2, []string{"a"}, set(2, "a", "b"), set(1, "a")},
		{"on: count of many", On, 2, []string{"a", "b", "c"}, set(1, "a"), set(2, "a", "b", "c")},
		{"strict: a failed standby leaves while count remain", Strict, 1, []string{"b"}, set(1, "a", "b"), set(1, "b")},
		{"strict: the last one stays, writes wait", Strict, 1, nil, set(1, "b"), set(1, "b")},
		{"strict: too few healthy keep the old ones listed", Strict, 2, []string{"a"}, set(2, "a", "b"), set(2, "a", "b")},
		{"strict: a returning standby replaces the failed one", Strict, 1, []string{"a"}, set(1, "b"), set(1, "a")},
		{"duplicates count once", On, 2, []string{"a", "a"}, Set{}, set(1, "a")},
		{"strict, just promoted, nobody streams yet: every other node", Strict, 1, nil, Set{}, set(1, "a", "b", "c")},
		{"strict, count 2, one healthy, one current: every other node", Strict, 2, []string{"a"}, Set{}, set(2, "a", "b", "c")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Want(c.mode, c.count, c.healthy, c.current, []string{"a", "b", "c"}); !got.Equal(c.want) {
				t.Errorf("Want = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCaughtUp(t *testing.T) {
	flushed := map[string]cluster.LSN{"a": 10, "b": 5}
	for _, c := range []struct {
		s    Set
		lsn  cluster.LSN
		want bool
	}{
		{Set{}, 99, true},
		{set(1, "a", "b"), 10, true},
		{set(2, "a", "b"), 10, false},
		{set(2, "a", "b"), 5, true},
		{set(1, "c"), 0, false}, // not streaming: no position
	} {
		if got := CaughtUp(c.s, flushed, c.lsn); got != c.want {
			t.Errorf("CaughtUp(%v, %v, %d) = %t, want %t", c.s, flushed, c.lsn, got, c.want)
		}
	}
}

func TestInitial(t *testing.T) {
	if got := Initial(On, 1, []string{"b", "a"}); !got.Equal(Set{}) {
		t.Errorf("on: %v, want nobody until a standby streams", got)
	}
	if got := Initial(Strict, 1, []string{"b", "a"}); !got.Equal(set(1, "a", "b")) {
		t.Errorf("strict: %v, want every other node", got)
	}
	if got := Initial(Strict, 3, []string{"a"}); !got.Equal(set(1, "a")) {
		t.Errorf("strict, fewer nodes than the count: %v", got)
	}
}

// TestViaKeepsTheInvariant checks, for every pair of small sets, that a
// write acknowledged under either set (on Quorum of its members, any of
// them) is on at least Via's Quorum members of Via's set.
func TestViaKeepsTheInvariant(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	var sets []Set
	for mask := 0; mask < 1<<len(nodes); mask++ {
		var m []string
		for i, n := range nodes {
			if mask&(1<<i) != 0 {
				m = append(m, n)
			}
		}
		for k := 0; k <= len(m); k++ {
			sets = append(sets, Set{Members: m, Quorum: k})
		}
	}
	for _, a := range sets {
		for _, b := range sets {
			via := Via(a, b)
			for _, under := range []Set{a, b} {
				if under.Quorum == 0 {
					continue
				}
				// The worst case: the write is on the under.Quorum members
				// least in via.
				in := 0
				for _, m := range under.Members {
					if slices.Contains(via.Members, m) {
						in++
					}
				}
				worst := under.Quorum - (len(under.Members) - in)
				if worst < via.Quorum {
					t.Errorf("Via(%v, %v) = %v: a write under %v may be on %d of its members", a, b, via, under, worst)
				}
			}
		}
	}
}

func TestStandbyNames(t *testing.T) {
	for _, c := range []struct {
		s     Set
		names map[string]string
		want  string
	}{
		{Set{}, nil, ""},
		{set(1, "198.18.0.2", "fd00::3"), nil, `ANY 1 ("198.18.0.2", "fd00::3")`},
		{set(2, "a", "b"), map[string]string{"a": `we"ird`}, `ANY 2 ("we""ird", "b")`},
	} {
		if got := StandbyNames(c.s, c.names); got != c.want {
			t.Errorf("StandbyNames(%v) = %q, want %q", c.s, got, c.want)
		}
	}
}

func TestLossless(t *testing.T) {
	for _, c := range []struct {
		name string
		rec  Set
		seen map[string]cluster.LSN
		want []string
		why  string
	}{
		{"alone: nobody", Set{}, map[string]cluster.LSN{"a": 9}, nil, "without a synchronous standby"},
		{"one of one", set(1, "a"), map[string]cluster.LSN{"a": 5, "x": 9}, []string{"a"}, ""},
		{"outside the set does not count, even with more WAL", set(1, "a"), map[string]cluster.LSN{"x": 9}, nil, "0 of the synchronous standbys a answer"},
		{"ANY 1 of 2 needs both seen", set(1, "a", "b"), map[string]cluster.LSN{"a": 5}, nil, "2 are needed"},
		{"ANY 1 of 2: the one with the most WAL", set(1, "a", "b"), map[string]cluster.LSN{"a": 5, "b": 7}, []string{"b"}, ""},
		{"ANY 2 of 3: any two seen do", set(2, "a", "b", "c"), map[string]cluster.LSN{"a": 5, "c": 5}, []string{"a", "c"}, ""},
		{"ANY 2 of 3: one seen is not enough", set(2, "a", "b", "c"), map[string]cluster.LSN{"c": 5}, nil, "1 of the synchronous standbys"},
		{"ANY 2 of 2: one seen is enough", set(2, "a", "b"), map[string]cluster.LSN{"b": 3}, []string{"b"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := Lossless(c.rec, c.seen)
			if !slices.Equal(got, c.want) || (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
				t.Errorf("Lossless = %v, %q; want %v, %q", got, why, c.want, c.why)
			}
		})
	}
}
