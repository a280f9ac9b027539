package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Config says which address to hold and where: EFM's virtual.ip,
// virtual.ip.prefix and virtual.ip.interface. It is passed by value and
// never rewritten; Validate only reports.
type Config struct {
	// Address is virtual.ip: an IPv4 or IPv6 unicast address, without a zone.
	Address netip.Addr
	// Prefix is virtual.ip.prefix. Zero means a host prefix: 32 for IPv4,
	// 128 for IPv6.
	Prefix int
	// Interface is virtual.ip.interface: the network interface name, without
	// an alias suffix such as ":1".
	Interface string
}

// Sentinel errors callers may branch on (wrapped, test with errors.Is).
var (
	// ErrNoInterface: virtual.ip.interface does not exist in this network
	// namespace.
	ErrNoInterface = errors.New("no such interface")
	// ErrInterfaceDown: the interface exists but is administratively down,
	// so the address could not be announced or probed.
	ErrInterfaceDown = errors.New("interface is down")
)

// Validate reports the first problem with c, in words that say the fix.
func (c Config) Validate() error {
	a := c.Address
	switch {
	case !a.IsValid():
		return errors.New("vip: virtual.ip is not set")
	case c.Interface == "":
		return errors.New("vip: virtual.ip.interface is not set: name the network interface that carries the virtual IP, e.g. eth0")
	case strings.Contains(c.Interface, ":"):
		return fmt.Errorf("vip: virtual.ip.interface %q: give the interface name without an alias suffix (%q)", c.Interface, c.Interface[:strings.Index(c.Interface, ":")])
	case len(c.Interface) > 15 || strings.ContainsAny(c.Interface, "/ \t\n"):
		return fmt.Errorf("vip: virtual.ip.interface %q is not a valid interface name", c.Interface)
	case a.Is4In6():
		return fmt.Errorf("vip: virtual.ip %s is an IPv4-mapped IPv6 address: write it as IPv4 (%s)", a, a.Unmap())
	case a.Zone() != "":
		return fmt.Errorf("vip: virtual.ip %s: remove the zone %q; virtual.ip.interface names the interface", a, a.Zone())
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("vip: virtual.ip %s is not a unicast address a client can reach", a)
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("vip: virtual.ip %s is an IPv6 link-local address (fe80::/10), which is refused: clients would need a zone and it cannot be routed; use a unique-local (fd00::/8) or global address", a)
	}
	bits := a.BitLen()
	switch {
	case c.Prefix < 0:
		return fmt.Errorf("vip: virtual.ip.prefix %d is negative: use 1..%d, or leave it unset for /%d", c.Prefix, bits, bits)
	case a.Is4() && c.Prefix > 32 && c.Prefix <= 128:
		return fmt.Errorf("vip: virtual.ip.prefix %d is an IPv6 prefix but virtual.ip %s is IPv4: use 1..32 (32 for a single address)", c.Prefix, a)
	case c.Prefix > bits:
		return fmt.Errorf("vip: virtual.ip.prefix %d is out of range for %s: use 1..%d", c.Prefix, a, bits)
	}
	return nil
}

// prefix is the effective prefix length (Prefix, or the host prefix when 0).
func (c Config) prefix() int {
	if c.Prefix == 0 {
		return c.Address.BitLen()
	}
	return c.Prefix
}

// String is "address/prefix on interface", for logs.
func (c Config) String() string {
	return fmt.Sprintf("%s/%d on %s", c.Address, c.prefix(), c.Interface)
}
