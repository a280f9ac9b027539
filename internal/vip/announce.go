package vip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
)

// Announcement rounds: the first goes out at once, the repeats cover a lost
// frame. Acquire returns after the last round, about 400 ms after adding.
const (
	announceRounds   = 3
	announceInterval = 200 * time.Millisecond
)

// announce tells the link that c.Address now lives at the interface's MAC
// address. Interfaces without an Ethernet address (tun, wireguard, ...) have
// no neighbour caches to update and are skipped.
func announce(ctx context.Context, c Config) error {
	ifi, err := net.InterfaceByName(c.Interface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", c.Interface, err)
	}
	if len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagLoopback != 0 {
		return nil
	}
	send, closeFn, err := announcer(ifi, c.Address)
	if err != nil {
		return err
	}
	defer closeFn()
	t := time.NewTimer(0)
	defer t.Stop()
	for round := 0; ; round++ {
		if err := send(); err != nil {
			return err
		}
		if round == announceRounds-1 {
			return nil
		}
		t.Reset(announceInterval)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// announcer opens the socket for one family and returns a function sending
// one round of announcements on it.
func announcer(ifi *net.Interface, a netip.Addr) (send func() error, closeFn func() error, err error) {
	if a.Is4() {
		return garp(ifi, a)
	}
	return unsolicitedNA(ifi, a)
}

// garp sends, per round, a gratuitous ARP request (sender = target = a,
// target MAC zero) and a gratuitous ARP reply (target MAC = sender MAC), both
// broadcast: Linux updates an existing neighbour entry from either, and other
// stacks honour one or the other.
func garp(ifi *net.Interface, a netip.Addr) (func() error, func() error, error) {
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open ARP socket on %q: %w", ifi.Name, err)
	}
	zero := make(net.HardwareAddr, 6)
	var frames [][]byte
	for _, p := range []struct {
		op  arp.Operation
		tha net.HardwareAddr
	}{{arp.OperationRequest, zero}, {arp.OperationReply, ifi.HardwareAddr}} {
		b, err := arpFrame(p.op, ifi.HardwareAddr, a, p.tha, a)
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		frames = append(frames, b)
	}
	send := func() error {
		for _, f := range frames {
			if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
				return fmt.Errorf("send gratuitous ARP on %q: %w", ifi.Name, err)
			}
		}
		return nil
	}
	return send, conn.Close, nil
}

// arpFrame is a broadcast Ethernet frame carrying one ARP packet.
func arpFrame(op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		return nil, fmt.Errorf("build ARP packet: %w", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("build ARP packet: %w", err)
	}
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: pb}
	return f.MarshalBinary()
}

// unsolicitedNA sends, per round, an unsolicited neighbour advertisement for
// a with the override flag and the target link-layer address, from a itself
// to all nodes (ff02::1), as Linux does for ndisc_notify (RFC 4861 7.2.6).
func unsolicitedNA(ifi *net.Interface, a netip.Addr) (func() error, func() error, error) {
	conn, _, err := ndp.Listen(ifi, ndp.Addr(a.String()))
	if err != nil {
		return nil, nil, fmt.Errorf("open ICMPv6 socket on %q from %s: %w", ifi.Name, a, err)
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: a,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
	}
	send := func() error {
		if err := conn.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
			return fmt.Errorf("send unsolicited neighbour advertisement on %q: %w", ifi.Name, err)
		}
		return nil
	}
	return send, conn.Close, nil
}
