package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// All functions act in the network namespace of the calling OS thread (for a
// normal process: its own namespace). They start no goroutines that make
// namespace-dependent system calls.

// Acquire adds the address to the interface, then announces it to the link
// (gratuitous ARP for IPv4, unsolicited neighbour advertisement for IPv6) so
// neighbours that cached the previous holder's MAC address switch at once.
// An address already present is not an error and is announced again.
//
// IPv6 addresses are added with IFA_F_NODAD, so they are usable at once, and
// with a preferred lifetime of 0 (deprecated), so the kernel never picks the
// virtual IP as the source of this host's own outgoing connections; incoming
// connections to it work normally.
func Acquire(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: acquire %s: %w", c, err)
	}
	link, err := upLink(c.Interface)
	if err != nil {
		return fmt.Errorf("vip: acquire %s: %w", c, err)
	}
	have, err := find(link, c.Address)
	if err != nil {
		return fmt.Errorf("vip: acquire %s: %w", c, err)
	}
	if len(have) == 0 {
		if err := netlink.AddrAdd(link, newAddr(c)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("vip: acquire %s: add address: %w", c, err)
		}
	}
	if err := announce(ctx, c); err != nil {
		return fmt.Errorf("vip: acquire %s: address added, announcement failed: %w", c, err)
	}
	return nil
}

// Release removes the address from the interface, whatever prefix it was
// added with. An address already absent is not an error.
func Release(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vip: release %s: %w", c, err)
	}
	link, err := linkByName(c.Interface)
	if err != nil {
		return fmt.Errorf("vip: release %s: %w", c, err)
	}
	have, err := find(link, c.Address)
	if err != nil {
		return fmt.Errorf("vip: release %s: %w", c, err)
	}
	for i := range have {
		if err := netlink.AddrDel(link, &have[i]); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("vip: release %s: delete %s: %w", c, have[i].IPNet, err)
		}
	}
	return nil
}

// Held reports whether the address is on the interface in this namespace,
// with any prefix length.
func Held(c Config) (bool, error) {
	if err := c.Validate(); err != nil {
		return false, err
	}
	link, err := linkByName(c.Interface)
	if err != nil {
		return false, fmt.Errorf("vip: held %s: %w", c, err)
	}
	have, err := find(link, c.Address)
	if err != nil {
		return false, fmt.Errorf("vip: held %s: %w", c, err)
	}
	return len(have) > 0, nil
}

// newAddr is the netlink address Acquire adds.
func newAddr(c Config) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   c.Address.AsSlice(),
		Mask: net.CIDRMask(c.prefix(), c.Address.BitLen()),
	}}
	if c.Address.Is6() {
		a.Flags = unix.IFA_F_NODAD
		a.ValidLft = infiniteLifetime
		a.PreferedLft = 0 // deprecated: not chosen as a source address
	}
	return a
}

// infiniteLifetime is the kernel's INFINITY_LIFE_TIME (0xffffffff).
const infiniteLifetime = 1<<32 - 1

func linkByName(name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("interface %q: %w here; check virtual.ip.interface against `ip link`", name, ErrNoInterface)
		}
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	return link, nil
}

// upLink is linkByName that also requires the link to be administratively up.
func upLink(name string) (netlink.Link, error) {
	link, err := linkByName(name)
	if err != nil {
		return nil, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface %q: %w; bring it up first", name, ErrInterfaceDown)
	}
	return link, nil
}

// find returns the link's addresses equal to a (any prefix length).
func find(link netlink.Link, a netip.Addr) ([]netlink.Addr, error) {
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	all, err := netlink.AddrList(link, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q: %w", link.Attrs().Name, err)
	}
	var out []netlink.Addr
	for _, x := range all {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
			out = append(out, x)
		}
	}
	return out, nil
}
