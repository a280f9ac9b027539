package syncrep

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseNames feeds ParseNames what a server's synchronous_standby_names
// may hold. A value it accepts is well formed, String writes it back as a
// value that parses to the same Names, and that value still parses the
// same with any whitespace PostgreSQL allows between its tokens.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{
		"", "s1", "S1, s2", "2 (a, b, c)", "FIRST 2 (a,b)", `ANY 1 ("198.18.0.2", "Node""3")`,
		"any 2 (*)", "*", "first", `ANY 2 ("10.0.0.2", "10.0.0.3", "10.0.0.4")`,
		"ANY 1 (\t\"a\",\n\"b\")", // whitespace other than blanks between tokens
		// hostile
		"ANY a, b", "ANY (a)", "0 (a)", "2 (a, b", `"a`, "a,,b", "((((", "ANY 99999999999999999999 (a)",
		"FIRST 1 (\"a)\", \"b(\")", "\xff\xfe", "ANY 1 ()", `1 ("")`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNames(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if n.Num == 0 {
			if strings.TrimSpace(s) != "" || n.String() != "" {
				t.Fatalf("ParseNames(%q) = %+v: no synchronous standbys from a value that names some", s, n)
			}
			return
		}
		if n.Method != "FIRST" && n.Method != "ANY" || n.Num < 1 || len(n.Members) == 0 || slices.Contains(n.Members, "") {
			t.Fatalf("ParseNames(%q) = %+v: malformed", s, n)
		}
		w := n.String()
		back, err := ParseNames(w)
		if err != nil || !sameNames(back, n) {
			t.Fatalf("ParseNames(%q) = %+v, written %q, reads back as %+v, %v", s, n, w, back, err)
		}
		spaced := spacedNames(n)
		back, err = ParseNames(spaced)
		if err != nil || !sameNames(back, n) {
			t.Fatalf("ParseNames(%q) = %+v, with other whitespace %q reads back as %+v, %v", s, n, spaced, back, err)
		}
	})
}

// FuzzNamesString writes Names of arbitrary standby names (the
// application names of the cluster's nodes, from etcd and the nodes'
// configuration) and checks they parse back unchanged.
func FuzzNamesString(f *testing.F) {
	f.Add(true, uint8(1), "10.0.0.2\x0010.0.0.3")
	f.Add(false, uint8(2), "a\x00B\x00c")
	f.Add(true, uint8(1), `node"3`+"\x00a, b\x00(x)\x00 lead")
	f.Add(true, uint8(1), "*")
	f.Add(false, uint8(3), "FIRST\x00ANY\x001")
	f.Fuzz(func(t *testing.T, anyMethod bool, num uint8, joined string) {
		n := Names{Method: "FIRST", Num: int(num)}
		if anyMethod {
			n.Method = "ANY"
		}
		for m := range strings.SplitSeq(joined, "\x00") {
			if m != "" {
				n.Members = append(n.Members, m)
			}
		}
		w := n.String()
		back, err := ParseNames(w)
		if n.Num == 0 || len(n.Members) == 0 {
			if w != "" || err != nil || back.Num != 0 {
				t.Fatalf("%+v: written %q, reads back as %+v, %v; want nothing", n, w, back, err)
			}
			return
		}
		if err != nil || !sameNames(back, n) {
			t.Fatalf("%+v: written %q, reads back as %+v, %v", n, w, back, err)
		}
		for _, m := range n.Members {
			if !back.Matches(m) {
				t.Fatalf("%q: member %q does not match itself", w, m)
			}
		}
	})
}

func sameNames(a, b Names) bool {
	return a.Method == b.Method && a.Num == b.Num && slices.Equal(a.Members, b.Members)
}

// spacedNames writes n as String does, with tabs, newlines and carriage
// returns around every token, which PostgreSQL's scanner skips as it does
// blanks.
func spacedNames(n Names) string {
	quoted := make([]string, len(n.Members))
	for i, m := range n.Members {
		if m == "*" {
			quoted[i] = m
			continue
		}
		quoted[i] = `"` + strings.ReplaceAll(m, `"`, `""`) + `"`
	}
	return "\n" + n.Method + "\t" + strconv.Itoa(n.Num) + "\r\n(\t" + strings.Join(quoted, "\t,\n") + "\f)\v"
}
