//go:build linux

package netns

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Faults are nftables rules in each host's own namespace, in a table
// "netdev pgfm" with an ingress and an egress chain on the host's eth0. They
// match Ethernet addresses, not IP ones: every IPv4 and IPv6 address a host
// holds (a virtual IP too) and its ARP and neighbour discovery are cut with
// it. Loopback inside a namespace is never touched. A host's whole table is
// replaced in one nft transaction whenever its faults change.

// kind is what a fault does.
type kind int

const (
	isolate kind = iota // a: cut from every host
	cut                 // a and b: nothing passes either way
	oneWay              // nothing passes from a to b
	loss                // a: percent% of its frames dropped each way
)

// fault is one fault in force. a and b are host names.
type fault struct {
	kind    kind
	a, b    string
	percent int
}

func (f fault) involves(names map[string]bool) bool {
	return names[f.a] || (f.b != "" && names[f.b])
}

// Isolate cuts h off from every other host, both ways, ARP and neighbour
// discovery included.
func (n *Network) Isolate(t testing.TB, h *Host) {
	t.Helper()
	n.change(t, func(fs []fault) []fault { return append(fs, fault{kind: isolate, a: h.Name}) })
}

// Cut stops all traffic between a and b, both ways.
func (n *Network) Cut(t testing.TB, a, b *Host) {
	t.Helper()
	n.change(t, func(fs []fault) []fault { return append(fs, fault{kind: cut, a: a.Name, b: b.Name}) })
}

// CutOneWay drops what from sends to to. ARP and neighbour solicitations
// and advertisements still pass, so to can still resolve from's address and
// reach it; a TCP connection either way fails, as its replies are lost.
func (n *Network) CutOneWay(t testing.TB, from, to *Host) {
	t.Helper()
	n.change(t, func(fs []fault) []fault { return append(fs, fault{kind: oneWay, a: from.Name, b: to.Name}) })
}

// Loss drops percent% (0..100) of the frames h sends and of those it
// receives, at random; it replaces h's previous loss, 0 removes it.
func (n *Network) Loss(t testing.TB, h *Host, percent int) {
	t.Helper()
	if percent < 0 || percent > 100 {
		t.Fatalf("netns: Loss(%s, %d): want 0..100", h.Name, percent)
	}
	n.change(t, func(fs []fault) []fault {
		fs = slices.DeleteFunc(fs, func(f fault) bool { return f.kind == loss && f.a == h.Name })
		if percent > 0 {
			fs = append(fs, fault{kind: loss, a: h.Name, percent: percent})
		}
		return fs
	})
}

// Heal removes every fault involving any of hosts, or every fault when none
// is given.
func (n *Network) Heal(t testing.TB, hosts ...*Host) {
	t.Helper()
	names := map[string]bool{}
	for _, h := range hosts {
		names[h.Name] = true
	}
	n.change(t, func(fs []fault) []fault {
		if len(hosts) == 0 {
			return nil
		}
		return slices.DeleteFunc(fs, func(f fault) bool { return f.involves(names) })
	})
}

// change edits the faults in force and reloads the table of every host
// whose rules changed.
func (n *Network) change(t testing.TB, edit func([]fault) []fault) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = edit(slices.Clone(n.faults))
	macs := map[string]string{}
	for _, h := range n.hosts {
		macs[h.Name] = h.MAC.String()
	}
	for _, h := range n.hosts {
		script := ruleset(h.Name, h.Iface, macs, n.faults)
		if script == h.applied {
			continue
		}
		if _, err := run(strings.NewReader(script), "ip", "netns", "exec", h.NS, "nft", "-f", "-"); err != nil {
			t.Fatalf("netns: %s: load rules: %v\n%s", h.Name, err, script)
		}
		h.applied = script
	}
}

// ruleset is the nft script that gives host self, whose interface is iface,
// the rules for faults; macs maps host names to Ethernet addresses. Drops
// come first; the ARP and neighbour discovery that one-way cuts let through
// are accepted only after them, so they never exempt a two-way cut.
func ruleset(self, iface string, macs map[string]string, faults []fault) string {
	var in, out, inOneWay, outOneWay []string
	for _, f := range faults {
		switch {
		case f.kind == isolate && f.a == self:
			in = append(in, "counter drop")
			out = append(out, "counter drop")
		case f.kind == cut && (f.a == self || f.b == self):
			peer := macs[other(f, self)]
			in = append(in, "ether saddr "+peer+" counter drop")
			out = append(out, "ether daddr "+peer+" counter drop")
		case f.kind == loss && f.a == self:
			r := "counter drop" // numgen's range stops at 99
			if f.percent < 100 {
				r = fmt.Sprintf("numgen random mod 100 < %d counter drop", f.percent)
			}
			in = append(in, r)
			out = append(out, r)
		case f.kind == oneWay && f.a == self:
			outOneWay = append(outOneWay, "ether daddr "+macs[f.b]+" counter drop")
		case f.kind == oneWay && f.b == self:
			inOneWay = append(inOneWay, "ether saddr "+macs[f.a]+" counter drop")
		}
	}
	var b strings.Builder
	// Declaring then deleting the table makes the load idempotent: the
	// table is replaced as a whole, or removed when no fault is left.
	b.WriteString("table netdev pgfm\ndelete table netdev pgfm\n")
	if len(in)+len(out)+len(inOneWay)+len(outOneWay) == 0 {
		return b.String()
	}
	b.WriteString("table netdev pgfm {\n")
	chain(&b, "in", "ingress", iface, in, inOneWay)
	chain(&b, "out", "egress", iface, out, outOneWay)
	b.WriteString("}\n")
	return b.String()
}

// chain writes one base chain: drops, then one-way drops behind the
// exemptions for address resolution.
func chain(b *strings.Builder, name, hook, iface string, drops, oneWay []string) {
	fmt.Fprintf(b, "\tchain %s {\n\t\ttype filter hook %s device %q priority filter; policy accept;\n", name, hook, iface)
	for _, r := range drops {
		fmt.Fprintf(b, "\t\t%s\n", r)
	}
	if len(oneWay) > 0 {
		b.WriteString("\t\tether type arp accept\n")
		b.WriteString("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n")
		for _, r := range oneWay {
			fmt.Fprintf(b, "\t\t%s\n", r)
		}
	}
	b.WriteString("\t}\n")
}

// other is the end of a two-host fault that is not self.
func other(f fault, self string) string {
	if f.a == self {
		return f.b
	}
	return f.a
}
