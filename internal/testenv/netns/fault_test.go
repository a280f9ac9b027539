//go:build linux

package netns

import (
	"strings"
	"testing"
)

func TestRuleset(t *testing.T) {
	macs := map[string]string{"h1": "02:70:67:00:00:01", "h2": "02:70:67:00:00:02", "client": "02:70:67:00:00:64"}
	const reset = "table netdev pgfm\ndelete table netdev pgfm\n"
	tests := []struct {
		name   string
		self   string
		faults []fault
		want   []string // lines expected, in this order
		absent []string
	}{
		{name: "no fault removes the table", self: "h1", want: []string{reset}, absent: []string{"chain"}},
		{name: "a fault elsewhere leaves no rule", self: "client",
			faults: []fault{{kind: cut, a: "h1", b: "h2"}, {kind: isolate, a: "h2"}, {kind: loss, a: "h1", percent: 5}},
			want:   []string{reset}, absent: []string{"chain"}},
		{name: "isolate drops everything both ways", self: "h1", faults: []fault{{kind: isolate, a: "h1"}},
			want: []string{"hook ingress device \"eth0\"", "\t\tcounter drop\n", "hook egress device \"eth0\"", "\t\tcounter drop\n"}},
		{name: "cut on either end drops the peer", self: "h2", faults: []fault{{kind: cut, a: "h1", b: "h2"}},
			want: []string{"ether saddr 02:70:67:00:00:01 counter drop", "ether daddr 02:70:67:00:00:01 counter drop"}},
		{name: "total loss", self: "h1", faults: []fault{{kind: loss, a: "h1", percent: 100}},
			want: []string{"chain in", "\t\tcounter drop\n", "chain out", "\t\tcounter drop\n"}, absent: []string{"numgen"}},
		{name: "loss both ways", self: "h1", faults: []fault{{kind: loss, a: "h1", percent: 5}},
			want: []string{"numgen random mod 100 < 5 counter drop", "numgen random mod 100 < 5 counter drop"}},
		{name: "one way at the sender's egress, after resolution is let through", self: "h1",
			faults: []fault{{kind: oneWay, a: "h1", b: "h2"}, {kind: cut, a: "h1", b: "client"}},
			want: []string{"chain out", "ether daddr 02:70:67:00:00:64 counter drop", "ether type arp accept",
				"nd-neighbor-advert } accept", "ether daddr 02:70:67:00:00:02 counter drop"},
			absent: []string{"ether saddr 02:70:67:00:00:02"}},
		{name: "one way at the receiver's ingress", self: "h2", faults: []fault{{kind: oneWay, a: "h1", b: "h2"}},
			want:   []string{"chain in", "ether type arp accept", "ether saddr 02:70:67:00:00:01 counter drop", "chain out"},
			absent: []string{"ether daddr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := append([]fault(nil), tt.faults...)
			got := ruleset(tt.self, "eth0", macs, tt.faults)
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("missing (in order) %q in:\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("unexpected %q in:\n%s", a, got)
				}
			}
			for i := range faults {
				if faults[i] != tt.faults[i] {
					t.Errorf("ruleset changed its input: %+v", tt.faults)
				}
			}
		})
	}
}
