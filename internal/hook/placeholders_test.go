package hook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Values of %p, %f and %h come from etcd: anything but an IP address (or
// nothing) stops the script before it starts.
func TestRunRefusesBadPlaceholders(t *testing.T) {
	ok := Placeholders{NewPrimary: "192.0.2.11", FailedPrimary: "192.0.2.10", Node: "192.0.2.11", Type: "p", Owner: "postgres"}
	for _, tc := range []struct {
		name string
		edit func(*Placeholders)
		want string // "" = runs
	}{
		{"all addresses", func(*Placeholders) {}, ""},
		{"IPv6", func(v *Placeholders) {
			v.NewPrimary, v.FailedPrimary, v.Node = "2001:db8::11", "2001:db8::10", "fd00::1"
		}, ""},
		{"no failed primary", func(v *Placeholders) { v.FailedPrimary = "" }, ""},
		{"nothing set", func(v *Placeholders) { *v = Placeholders{} }, ""},
		{"standby type", func(v *Placeholders) { v.Type = "s" }, ""},
		{"option in %f", func(v *Placeholders) { v.FailedPrimary = "--force" }, `placeholder %f is "--force", not a node address; the cluster state in etcd may be corrupt`},
		{"path in %p", func(v *Placeholders) { v.NewPrimary = "/etc/shadow" }, `placeholder %p is "/etc/shadow"`},
		{"blank in %f", func(v *Placeholders) { v.FailedPrimary = "192.0.2.10 extra" }, `placeholder %f is "192.0.2.10 extra"`},
		{"host name in %h", func(v *Placeholders) { v.Node = "db1.example.com" }, `placeholder %h is "db1.example.com"`},
		{"address and port", func(v *Placeholders) { v.FailedPrimary = "192.0.2.10:7800" }, `placeholder %f is "192.0.2.10:7800"`},
		{"zone", func(v *Placeholders) { v.Node = "fe80::1%eth0" }, `placeholder %h is "fe80::1%eth0"`},
		{"blank only", func(v *Placeholders) { v.NewPrimary = " " }, `placeholder %p is " "`},
		{"newline", func(v *Placeholders) { v.NewPrimary = "192.0.2.11\n" }, `placeholder %p is "192.0.2.11\n"`},
		{"bad type", func(v *Placeholders) { v.Type = "x; rm" }, `placeholder %t is "x; rm", not p or s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			vars := ok
			tc.edit(&vars)
			res := NewRunner(nil).Run(context.Background(), "script.fence", `/bin/sh -c ': > "$0"' `+shellQuote(marker)+" %p %f %h",
				vars, Env("main", "failover", vars), 5*time.Second)
			_, statErr := os.Stat(marker)
			ran := statErr == nil
			if tc.want == "" {
				if res.Outcome != OK || !ran {
					t.Fatalf("refused valid placeholders %+v: %+v", vars, res)
				}
				return
			}
			if ran {
				t.Fatal("the script ran")
			}
			if res.Outcome != Failed || res.ExitCode != -1 || res.Err == nil {
				t.Fatalf("%+v", res)
			}
			if msg := res.Err.Error(); !strings.Contains(msg, "refusing to run script.fence: "+tc.want) {
				t.Errorf("error %q lacks %q", msg, tc.want)
			}
		})
	}
}
