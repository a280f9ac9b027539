package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var nodesCases = []struct {
	name   string
	in     string
	want   []string
	errors []string // substrings, each must appear in the error
}{
	{name: "empty", in: ""},
	{name: "only comments", in: "# nothing\n   # here\n"},
	{name: "ipv4 one line", in: "198.51.100.7:7800 198.51.100.8:7800", want: []string{"198.51.100.7:7800", "198.51.100.8:7800"}},
	{name: "newlines and tabs", in: "198.51.100.7:7800\n\t198.51.100.8:7800\r\n", want: []string{"198.51.100.7:7800", "198.51.100.8:7800"}},
	{name: "ipv6", in: "[2001:db8::7]:7800", want: []string{"[2001:db8::7]:7800"}},
	{name: "ipv4-mapped ipv6 is unmapped", in: "[::ffff:198.51.100.7]:7800", want: []string{"198.51.100.7:7800"}},
	{name: "comment after entry", in: "198.51.100.7:7800 # primary\n# 198.51.100.9:7800\n", want: []string{"198.51.100.7:7800"}},
	{name: "comment glued to entry", in: "198.51.100.7:7800#x", want: []string{"198.51.100.7:7800"}},
	{name: "duplicates keep first", in: "198.51.100.8:7800 198.51.100.7:7800\n198.51.100.8:7800", want: []string{"198.51.100.8:7800", "198.51.100.7:7800"}},
	{name: "missing port", in: "\n198.51.100.7", errors: []string{"n.nodes:2: 198.51.100.7: 198.51.100.7 has no port; add one: 198.51.100.7:7800"}},
	{name: "ipv6 missing port", in: "2001:db8::7", errors: []string{"n.nodes:1: 2001:db8::7: ", "put IPv6 addresses in brackets and add a port: [2001:db8::7]:7800"}},
	{name: "hostname", in: "db1.example.com:7800", errors: []string{"n.nodes:1: db1.example.com:7800: ", "is a host name", "192.0.2.10:7800"}},
	{name: "bad port", in: "198.51.100.7:99999", errors: []string{`port "99999" is not a number in 1..65535`}},
	{name: "port zero", in: "198.51.100.7:0", errors: []string{"port 0 is not a usable port"}},
	{name: "link-local", in: "[fe80::1]:7800", errors: []string{"link-local IPv6", "fd00::/8"}},
	{name: "zone", in: "[fd00::1%eth0]:7800", errors: []string{"zone index (%eth0)"}},
	{name: "unspecified", in: "0.0.0.0:7800", errors: []string{"unspecified address"}},
	{name: "good and bad mixed", in: "198.51.100.7:7800\nbad\n198.51.100.8:7800 also:bad",
		want:   []string{"198.51.100.7:7800", "198.51.100.8:7800"},
		errors: []string{"n.nodes:2: bad: ", "n.nodes:3: also:bad: ", "other agents' bind.address"}},
}

func TestParseNodes(t *testing.T) {
	for _, tc := range nodesCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNodes([]byte(tc.in), "n.nodes")
			if s := addrStrings(got); !reflect.DeepEqual(s, tc.want) {
				t.Errorf("got %q, want %q", s, tc.want)
			}
			if len(tc.errors) == 0 && err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			for _, want := range tc.errors {
				checkErr(t, err, want)
			}
		})
	}
}

func addrStrings(addrs []netip.AddrPort) []string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return s
}

func FuzzParseNodes(f *testing.F) {
	for _, tc := range nodesCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		addrs, _ := ParseNodes(data, "fuzz.nodes")
		seen := map[netip.AddrPort]bool{}
		for _, a := range addrs {
			if !a.IsValid() || a.Port() == 0 || seen[a] {
				t.Fatalf("bad or duplicate address %v in %q", a, addrs)
			}
			seen[a] = true
		}
	})
}

func TestReadNodesMissingFile(t *testing.T) {
	got, err := ReadNodes(filepath.Join(t.TempDir(), "none.nodes"))
	if err != nil || got != nil {
		t.Fatalf("got %v, %v; want nil, nil", got, err)
	}
}

func TestWriteNodesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.nodes")
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("[2001:db8::7]:7800"),
		netip.MustParseAddrPort("198.51.100.9:7800"),
		netip.MustParseAddrPort("198.51.100.7:7800"),
		netip.MustParseAddrPort("198.51.100.9:7800"),
	}
	if err := WriteNodes(path, addrs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadNodes(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"198.51.100.7:7800", "198.51.100.9:7800", "[2001:db8::7]:7800"}
	if s := addrStrings(got); !reflect.DeepEqual(s, want) {
		t.Errorf("read back %q, want sorted and deduplicated %q", s, want)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# ") || !strings.HasSuffix(string(data), "\n[2001:db8::7]:7800\n") {
		t.Errorf("unexpected layout:\n%s", data)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644", st.Mode().Perm())
	}
	if addrs[0].String() != "[2001:db8::7]:7800" {
		t.Error("WriteNodes reordered its argument")
	}
	assertOnlyFile(t, dir, "c.nodes")

	if err := WriteNodes(path, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadNodes(path); err != nil || len(got) != 0 {
		t.Errorf("empty list read back as %v, %v", got, err)
	}
}

func TestWriteNodesKeepsMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.nodes")
	if err := os.WriteFile(path, []byte("198.51.100.7:7800\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteNodes(path, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.8:7800")}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
	}
	got, _ := ReadNodes(path)
	if s := addrStrings(got); !reflect.DeepEqual(s, []string{"198.51.100.8:7800"}) {
		t.Errorf("got %q", s)
	}
	assertOnlyFile(t, dir, "c.nodes")
}

func TestWriteNodesFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.nodes")
	old := "198.51.100.7:7800\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory in the rename's way makes the last step fail.
	blocked := filepath.Join(dir, "sub")
	if err := os.Mkdir(blocked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocked, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteNodes(blocked, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.8:7800")}); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	if data, _ := os.ReadFile(path); string(data) != old {
		t.Errorf("old file changed: %q", data)
	}
	assertOnlyFile(t, dir, "c.nodes", "sub")
}

// assertOnlyFile fails if dir holds anything but names (a temp file left behind).
func assertOnlyFile(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("directory holds %q, want only %q", got, names)
	}
}
