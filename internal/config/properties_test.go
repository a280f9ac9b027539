package config

import (
	"reflect"
	"strings"
	"testing"
)

// propertiesCases is shared with FuzzParseProperties as its seed corpus.
var propertiesCases = []struct {
	name  string
	in    string
	want  []Entry
	warn  []string // substrings, one per expected warning, in order
	error string   // substring of the error; "" = no error
}{
	{name: "empty", in: "", want: nil},
	{name: "equals", in: "a=b\n", want: []Entry{{"a", "b", 1}}},
	{name: "colon", in: "a:b", want: []Entry{{"a", "b", 1}}},
	{name: "whitespace separator", in: "a b", want: []Entry{{"a", "b", 1}}},
	{name: "tab separator", in: "a\tb", want: []Entry{{"a", "b", 1}}},
	{name: "blanks around separator", in: "  a  =  b c ", want: []Entry{{"a", "b c ", 1}}},
	{name: "whitespace then equals", in: "a   =b", want: []Entry{{"a", "b", 1}}},
	{name: "second separator is value", in: "a==b", want: []Entry{{"a", "=b", 1}}},
	{name: "colon then equals", in: "a:=b", want: []Entry{{"a", "=b", 1}}},
	{name: "key only", in: "a", want: []Entry{{"a", "", 1}}},
	{name: "key then separator only", in: "a=", want: []Entry{{"a", "", 1}}},
	{name: "empty key", in: "=b", want: []Entry{{"", "b", 1}}},
	{name: "comments", in: "# one\n! two\n  # three\na=b # not a comment\n", want: []Entry{{"a", "b # not a comment", 4}}},
	{name: "blank lines", in: "\n\n  \t\f\na=b\n\n", want: []Entry{{"a", "b", 4}}},
	{name: "continuation", in: "a=one \\\n    two\\\n\tthree\nb=c", want: []Entry{{"a", "one twothree", 1}, {"b", "c", 4}}},
	{name: "continuation in key", in: "ab\\\n  cd=1", want: []Entry{{"abcd", "1", 1}}},
	{name: "continued line starting with hash is not a comment", in: "a=1\\\n#2", want: []Entry{{"a", "1#2", 1}}},
	{name: "comment line with trailing backslash does not continue", in: "# c \\\na=1", want: []Entry{{"a", "1", 2}}},
	{name: "even backslashes do not continue", in: "a=x\\\\\nb=y", want: []Entry{{"a", `x\`, 1}, {"b", "y", 2}}},
	{name: "odd backslashes continue", in: "a=x\\\\\\\ny", want: []Entry{{"a", `x\y`, 1}}},
	{name: "continuation then blank line ends", in: "a=1\\\n\nb=2", want: []Entry{{"a", "1", 1}, {"b", "2", 3}}},
	{name: "trailing backslash at EOF", in: "a=1\\", want: []Entry{{"a", "1", 1}}},
	{name: "trailing backslash at EOF after newline", in: "a=1\\\n", want: []Entry{{"a", "1", 1}}},
	{name: "CRLF", in: "a=1\r\nb=2\r\n", want: []Entry{{"a", "1", 1}, {"b", "2", 2}}},
	{name: "CR only", in: "a=1\rb=2", want: []Entry{{"a", "1", 1}, {"b", "2", 2}}},
	{name: "CRLF continuation", in: "a=1\\\r\n   2\r\n", want: []Entry{{"a", "12", 1}}},
	{name: "escapes", in: `a=\t\n\r\f\\\z\"`, want: []Entry{{"a", "\t\n\r\f\\z\"", 1}}},
	{name: "escaped separators in key", in: `a\=b\:c\ d=v`, want: []Entry{{"a=b:c d", "v", 1}}},
	{name: "escaped hash starts key", in: `\#a=1`, want: []Entry{{"#a", "1", 1}}},
	{name: "unicode escape", in: `a=caf\u00e9 \u20AC`, want: []Entry{{"a", "café €", 1}}},
	{name: "unicode escape in key", in: `\u0061=1`, want: []Entry{{"a", "1", 1}}},
	{name: "surrogate pair", in: `a=\uD83D\uDE00`, want: []Entry{{"a", "😀", 1}}},
	{name: "lone surrogate", in: `a=\uD83Dx`, want: []Entry{{"a", "\uFFFDx", 1}}},
	{name: "continuation inside unicode escape", in: "a=\\u00\\\n   41", want: []Entry{{"a", "A", 1}}},
	{name: "surrogate pair split by continuation", in: "a=\\uD83D\\\n\\uDE00", want: []Entry{{"a", "😀", 1}}},
	{name: "high surrogate then bad escape", in: `a=\uD83D\uZZZZ`, error: "malformed Unicode escape"},
	{name: "utf-8 literal", in: "a=héllo", want: []Entry{{"a", "héllo", 1}}},
	{name: "escaped multibyte", in: `a=\é`, want: []Entry{{"a", "é", 1}}},
	{name: "bad unicode escape", in: "x=1\na=\\u00zz\nb=2", want: []Entry{{"x", "1", 1}, {"b", "2", 3}},
		error: `f.properties:2: a: malformed Unicode escape "\\u00zz"`},
	{name: "short unicode escape at end", in: `a=\u12`, error: "four hex digits"},
	{name: "bad unicode escape in key", in: `\uq=1`, error: "f.properties:1: in the key: malformed"},
	{name: "duplicate last wins", in: "a=1\nb=2\na=3\n", want: []Entry{{"b", "2", 2}, {"a", "3", 3}},
		warn: []string{"f.properties:3: a: set on line 1 and again on line 3; the value on line 3 wins; remove one of them"}},
	{name: "NUL bytes", in: "a\x00=\x00", want: []Entry{{"a\x00", "\x00", 1}}},
}

func TestParseProperties(t *testing.T) {
	for _, tc := range propertiesCases {
		t.Run(tc.name, func(t *testing.T) {
			got, warns, err := ParseProperties([]byte(tc.in), "f.properties")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("entries:\n got %+v\nwant %+v", got, tc.want)
			}
			checkErr(t, err, tc.error)
			if len(warns) != len(tc.warn) {
				t.Fatalf("warnings: got %q, want %d", warns, len(tc.warn))
			}
			for i, w := range warns {
				if !strings.Contains(w.String(), tc.warn[i]) {
					t.Errorf("warning %d: got %q, want it to contain %q", i, w, tc.warn[i])
				}
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func FuzzParseProperties(f *testing.F) {
	for _, tc := range propertiesCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _, _ := ParseProperties(data, "fuzz.properties")
		seen := map[string]bool{}
		for _, e := range entries {
			if e.Line < 1 {
				t.Fatalf("entry %q has line %d", e.Key, e.Line)
			}
			if seen[e.Key] {
				t.Fatalf("key %q returned twice", e.Key)
			}
			seen[e.Key] = true
		}
	})
}
