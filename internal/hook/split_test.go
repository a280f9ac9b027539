package hook

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "  \t ", want: nil},
		{in: "/bin/fence.sh %p %f", want: []string{"/bin/fence.sh", "%p", "%f"}},
		{in: "  a\tb\nc  ", want: []string{"a", "b", "c"}},
		{in: `a 'b c' "d e"`, want: []string{"a", "b c", "d e"}},
		{in: `a 'it''s' x`, want: []string{"a", "its", "x"}},
		{in: `a '' ""`, want: []string{"a", "", ""}},
		{in: `a 'x "y" \z'`, want: []string{"a", `x "y" \z`}},
		{in: `a "x 'y' \"z\" \\ \n"`, want: []string{"a", `x 'y' "z" \ \n`}},
		{in: `a b\ c \'d\"`, want: []string{"a", "b c", `'d"`}},
		{in: `pre"mid"'post' x`, want: []string{"premidpost", "x"}},
		{in: `a | b; c > d $HOME *`, want: []string{"a", "|", "b;", "c", ">", "d", "$HOME", "*"}},
		{in: `a 'b`, err: "unclosed single quote at position 3"},
		{in: `a "b`, err: "unclosed double quote at position 3"},
		{in: `a "b\"`, err: "unclosed double quote"},
		{in: `a b\`, err: "trailing backslash"},
	} {
		got, err := Split(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Split(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestExpand(t *testing.T) {
	v := Placeholders{NewPrimary: "192.0.2.11", FailedPrimary: "192.0.2.10", Node: "192.0.2.12", Type: "s", Owner: "postgres"}
	for in, want := range map[string]string{
		"%p":           "192.0.2.11",
		"%f":           "192.0.2.10",
		"%h":           "192.0.2.12",
		"%t":           "s",
		"%u":           "postgres",
		"--old=%f:%p":  "--old=192.0.2.10:192.0.2.11",
		"100%%":        "100%",
		"%%p":          "%p",
		"%x %":         "%x %",
		"%":            "%",
		"%%%p":         "%192.0.2.11",
		"%q%p":         "%q192.0.2.11",
		"no percent":   "no percent",
		"sudo -u %u x": "sudo -u postgres x",
	} {
		if got := v.Expand(in); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
	// A value is never re-split or re-expanded.
	args, err := argv(`/f %p "%f"`, Placeholders{NewPrimary: "a b 'c'", FailedPrimary: "%p"})
	if err != nil || !reflect.DeepEqual(args, []string{"/f", "a b 'c'", "%p"}) {
		t.Errorf("argv = %q, %v", args, err)
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{`a 'b c' "d\"e" f\ g`, `x "`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := Split(s)
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Fatalf("error without ErrSyntax: %v", err)
		}
		if err == nil {
			// Quoting every word and splitting again gives the same words.
			var q string
			for _, w := range words {
				q += " '" + strings.ReplaceAll(w, "'", `'\''`) + "'"
			}
			again, err := Split(q)
			if err != nil || (len(words) > 0 && !reflect.DeepEqual(again, words)) {
				t.Fatalf("round trip of %q: %q -> %q, %v", s, words, again, err)
			}
		}
	})
}
