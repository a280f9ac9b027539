package syncrep

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNames(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    Names
		written string
		err     string
	}{
		{"", Names{}, "", ""},
		{"s1", Names{"FIRST", 1, []string{"s1"}}, `FIRST 1 ("s1")`, ""},
		{"S1, s2", Names{"FIRST", 1, []string{"s1", "s2"}}, `FIRST 1 ("s1", "s2")`, ""},
		{"2 (a, b, c)", Names{"FIRST", 2, []string{"a", "b", "c"}}, `FIRST 2 ("a", "b", "c")`, ""},
		{"FIRST 2 (a,b)", Names{"FIRST", 2, []string{"a", "b"}}, `FIRST 2 ("a", "b")`, ""},
		{`ANY 1 ("198.18.0.2", "Node""3")`, Names{"ANY", 1, []string{"198.18.0.2", `Node"3`}}, `ANY 1 ("198.18.0.2", "Node""3")`, ""},
		{"any 2 (*)", Names{"ANY", 2, []string{"*"}}, `ANY 2 (*)`, ""},
		{"*", Names{"FIRST", 1, []string{"*"}}, `FIRST 1 (*)`, ""},
		{"first", Names{"FIRST", 1, []string{"first"}}, `FIRST 1 ("first")`, ""},
		{"ANY a, b", Names{}, "", "parentheses"},
		{"ANY (a)", Names{}, "", "not a number"},
		{"0 (a)", Names{}, "", "not a number"},
		{"2 (a, b", Names{}, "", "unbalanced"},
		{`"a`, Names{}, "", "unterminated"},
		{"a,,b", Names{}, "", "empty standby name"},
	} {
		got, err := ParseNames(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseNames(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got.Method != c.want.Method || got.Num != c.want.Num || !slices.Equal(got.Members, c.want.Members) {
			t.Errorf("ParseNames(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if got.String() != c.written {
			t.Errorf("ParseNames(%q).String() = %q, want %q", c.in, got.String(), c.written)
		}
	}
}

func TestAdjust(t *testing.T) {
	two := Names{"ANY", 2, []string{"a", "b", "c"}}
	for _, c := range []struct {
		name                   string
		n                      Names
		available              int
		numSync                bool
		max                    int
		syncPrimary            bool
		wantNum                int
		wantChanged, wantShort bool
	}{
		{"enough: nothing", two, 2, true, 0, true, 2, false, false},
		{"too few, notify only", two, 1, false, 0, false, 2, false, true},
		{"reconfigure.num.sync lowers to what streams", two, 1, true, 0, false, 1, true, false},
		{"never below 1: none streams, notify", two, 0, true, 0, false, 2, false, true},
		{"none streams, reconfigure.sync.primary clears", two, 0, true, 0, true, 0, true, false},
		{"reconfigure.num.sync.max raises back", Names{"ANY", 1, []string{"a", "b", "c"}}, 3, true, 2, false, 2, true, false},
		{"raised no further than what streams", Names{"ANY", 1, []string{"a", "b", "c"}}, 2, true, 3, false, 2, true, false},
		{"not synchronous: nothing", Names{}, 0, true, 0, true, 0, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			next, changed, short := Adjust(c.n, c.available, c.numSync, c.max, c.syncPrimary)
			if next.Num != c.wantNum || changed != c.wantChanged || short != c.wantShort {
				t.Errorf("Adjust = %v (num %d), changed %t, short %t; want num %d, changed %t, short %t",
					next, next.Num, changed, short, c.wantNum, c.wantChanged, c.wantShort)
			}
		})
	}
}
