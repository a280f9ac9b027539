package vip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.100")
	v6 := netip.MustParseAddr("fd00:5e::100")
	tests := []struct {
		name string
		c    Config
		want string // substring of the error; "" = valid
	}{
		{"ipv4 default prefix", Config{Address: v4, Interface: "eth0"}, ""},
		{"ipv4 /24", Config{Address: v4, Prefix: 24, Interface: "eth0"}, ""},
		{"ipv4 /32", Config{Address: v4, Prefix: 32, Interface: "eth0"}, ""},
		{"ipv6 default prefix", Config{Address: v6, Interface: "eth0"}, ""},
		{"ipv6 /64", Config{Address: v6, Prefix: 64, Interface: "eth0"}, ""},
		{"ipv6 /128", Config{Address: v6, Prefix: 128, Interface: "bond0.42"}, ""},

		{"no address", Config{Interface: "eth0"}, "virtual.ip is not set"},
		{"no interface", Config{Address: v4}, "virtual.ip.interface is not set"},
		{"alias suffix", Config{Address: v4, Interface: "eth0:1"}, `without an alias suffix ("eth0")`},
		{"interface name too long", Config{Address: v4, Interface: "abcdefghijklmnop"}, "not a valid interface name"},
		{"interface name with slash", Config{Address: v4, Interface: "eth/0"}, "not a valid interface name"},
		{"negative prefix", Config{Address: v4, Prefix: -1, Interface: "eth0"}, "negative"},
		{"ipv4 prefix 33", Config{Address: v4, Prefix: 33, Interface: "eth0"}, "IPv6 prefix but virtual.ip 198.18.0.100 is IPv4"},
		{"ipv4 with ipv6 prefix 64", Config{Address: v4, Prefix: 64, Interface: "eth0"}, "IPv6 prefix but virtual.ip 198.18.0.100 is IPv4"},
		{"ipv4 prefix 129", Config{Address: v4, Prefix: 129, Interface: "eth0"}, "out of range for 198.18.0.100: use 1..32"},
		{"ipv6 prefix 129", Config{Address: v6, Prefix: 129, Interface: "eth0"}, "out of range for fd00:5e::100: use 1..128"},
		{"ipv6 link-local", Config{Address: netip.MustParseAddr("fe80::1"), Interface: "eth0"}, "link-local"},
		{"ipv6 with zone", Config{Address: netip.MustParseAddr("fd00::1%eth0"), Interface: "eth0"}, "remove the zone"},
		{"ipv4-mapped", Config{Address: netip.MustParseAddr("::ffff:198.18.0.1"), Interface: "eth0"}, "write it as IPv4 (198.18.0.1)"},
		{"ipv4 unspecified", Config{Address: netip.MustParseAddr("0.0.0.0"), Interface: "eth0"}, "not a unicast address"},
		{"ipv6 loopback", Config{Address: netip.MustParseAddr("::1"), Interface: "eth0"}, "not a unicast address"},
		{"ipv4 multicast", Config{Address: netip.MustParseAddr("239.1.1.1"), Interface: "eth0"}, "not a unicast address"},
		{"ipv4 broadcast", Config{Address: netip.MustParseAddr("255.255.255.255"), Interface: "eth0"}, "not a unicast address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEffectivePrefix(t *testing.T) {
	for _, tt := range []struct {
		c    Config
		want int
	}{
		{Config{Address: netip.MustParseAddr("198.18.0.1")}, 32},
		{Config{Address: netip.MustParseAddr("198.18.0.1"), Prefix: 24}, 24},
		{Config{Address: netip.MustParseAddr("fd00::1")}, 128},
		{Config{Address: netip.MustParseAddr("fd00::1"), Prefix: 64}, 64},
	} {
		if got := tt.c.prefix(); got != tt.want {
			t.Errorf("%+v: prefix() = %d, want %d", tt.c, got, tt.want)
		}
	}
}

func TestNAFilterAssembles(t *testing.T) {
	if _, err := assembleNAFilter(); err != nil {
		t.Fatal(err)
	}
}
