package vip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// Answers reports whether another host on the interface's link answers for
// the address within timeout: check.vip.before.promotion asks it before
// promoting. It sends probes that claim no address and so change no
// neighbour cache: for IPv4 an ARP probe (RFC 5227, sender 0.0.0.0), for
// IPv6 a duplicate address detection neighbour solicitation (source ::, to
// the solicited-node group). A reply whose sender is this interface's own
// MAC address is ignored: an address held here is Held's business.
//
// The probe is repeated three times within timeout, so one lost frame does
// not read as "nobody answers". It returns (false, nil) when timeout passes
// in silence and an error when ctx ends first.
func Answers(ctx context.Context, c Config, timeout time.Duration) (bool, error) {
	if err := c.Validate(); err != nil {
		return false, err
	}
	if timeout <= 0 {
		return false, fmt.Errorf("vip: answers %s: timeout %v must be positive", c, timeout)
	}
	ifi, err := probeInterface(c.Interface)
	if err != nil {
		return false, fmt.Errorf("vip: answers %s: %w", c, err)
	}
	p, err := newProber(ifi, c.Address)
	if err != nil {
		return false, fmt.Errorf("vip: answers %s: %w", c, err)
	}
	defer p.conn.Close()

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Wake a blocked read as soon as ctx ends.
	stop := context.AfterFunc(ctx, func() { p.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	deadline, _ := ctx.Deadline()
	interval := timeout / 3
	next := time.Now()
	buf := make([]byte, ifi.MTU+64)
	for {
		// ctx first: when the parent ends, it is cancelled before ctx, so
		// parent.Err() is set by then (checked the other way round, the
		// parent could end between the two checks and look like our own
		// timeout).
		if ctx.Err() != nil {
			if err := parent.Err(); err != nil {
				return false, fmt.Errorf("vip: answers %s: %w", c, err)
			}
			return false, nil // nobody answered within timeout
		}
		if now := time.Now(); !now.Before(next) {
			if _, err := p.conn.WriteTo(p.probe, p.to); err != nil {
				return false, fmt.Errorf("vip: answers %s: send probe: %w", c, err)
			}
			next = now.Add(interval)
		}
		if err := p.conn.SetReadDeadline(earliest(next, deadline)); err != nil {
			return false, fmt.Errorf("vip: answers %s: %w", c, err)
		}
		if ctx.Err() != nil { // AfterFunc may have fired before the line above
			continue
		}
		n, _, err := p.conn.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("vip: answers %s: read: %w", c, err)
		}
		if p.answer(buf[:n]) {
			return true, nil
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// probeInterface is the interface to probe from: present, up, Ethernet.
func probeInterface(name string) (*net.Interface, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		if _, lerr := linkByName(name); errors.Is(lerr, ErrNoInterface) {
			return nil, lerr
		}
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface %q: %w; bring it up first", name, ErrInterfaceDown)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %q has no Ethernet address, so there is no link to probe", name)
	}
	return ifi, nil
}

// A prober is an open link-layer socket, the probe frame to send and the
// test that recognises another host's answer.
type prober struct {
	conn   *packet.Conn
	probe  []byte
	to     *packet.Addr
	answer func(frame []byte) bool
}

func newProber(ifi *net.Interface, a netip.Addr) (*prober, error) {
	if a.Is4() {
		return arpProber(ifi, a)
	}
	return ndpProber(ifi, a)
}

func arpProber(ifi *net.Interface, a netip.Addr) (*prober, error) {
	probe, err := arpFrame(arp.OperationRequest, ifi.HardwareAddr, netip.IPv4Unspecified(), make(net.HardwareAddr, 6), a)
	if err != nil {
		return nil, err
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %q: %w", ifi.Name, err)
	}
	own := ifi.HardwareAddr
	answer := func(b []byte) bool {
		var f ethernet.Frame
		if f.UnmarshalBinary(b) != nil || f.EtherType != ethernet.EtherTypeARP || bytes.Equal(f.Source, own) {
			return false
		}
		var p arp.Packet
		if p.UnmarshalBinary(f.Payload) != nil {
			return false
		}
		// A reply, or another host's own claim (gratuitous request).
		return p.SenderIP == a && !bytes.Equal(p.SenderHardwareAddr, own)
	}
	return &prober{conn: conn, probe: probe, to: &packet.Addr{HardwareAddr: ethernet.Broadcast}, answer: answer}, nil
}

// assembleNAFilter is a socket filter passing only Ethernet frames that
// carry an ICMPv6 neighbour advertisement without extension headers, so a
// busy link (replication traffic) is not copied to us while we wait.
func assembleNAFilter() ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                           // EtherType
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x86dd, SkipTrue: 5}, // IPv6?
		bpf.LoadAbsolute{Off: 14 + 6, Size: 1},                       // next header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 58, SkipTrue: 3},     // ICMPv6?
		bpf.LoadAbsolute{Off: 14 + 40, Size: 1},                      // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 136, SkipTrue: 1},    // neighbour advertisement?
		bpf.RetConstant{Val: 1 << 16},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		return nil, fmt.Errorf("assemble neighbour advertisement filter: %w", err)
	}
	return raw, nil
}

func ndpProber(ifi *net.Interface, a netip.Addr) (*prober, error) {
	dst, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		return nil, err
	}
	src := netip.IPv6Unspecified()
	icmp, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: a}, src, dst)
	if err != nil {
		return nil, fmt.Errorf("build neighbour solicitation: %w", err)
	}
	d := dst.As16()
	macDst := net.HardwareAddr{0x33, 0x33, d[12], d[13], d[14], d[15]}
	f := ethernet.Frame{Destination: macDst, Source: ifi.HardwareAddr, EtherType: ethernet.EtherTypeIPv6, Payload: ipv6Packet(src, dst, icmp)}
	probe, err := f.MarshalBinary()
	if err != nil {
		return nil, err
	}
	filter, err := assembleNAFilter()
	if err != nil {
		return nil, err
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeIPv6), &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("open IPv6 socket on %q: %w", ifi.Name, err)
	}
	own := ifi.HardwareAddr
	answer := func(b []byte) bool {
		var f ethernet.Frame
		if f.UnmarshalBinary(b) != nil || f.EtherType != ethernet.EtherTypeIPv6 || bytes.Equal(f.Source, own) {
			return false
		}
		ip := f.Payload
		if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != 58 {
			return false
		}
		n := int(binary.BigEndian.Uint16(ip[4:6]))
		if 40+n > len(ip) {
			return false
		}
		m, err := ndp.ParseMessage(ip[40 : 40+n])
		if err != nil {
			return false
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		return ok && na.TargetAddress == a
	}
	return &prober{conn: conn, probe: probe, to: &packet.Addr{HardwareAddr: macDst}, answer: answer}, nil
}

// ipv6Packet is an IPv6 header (hop limit 255, as neighbour discovery
// requires) followed by an ICMPv6 payload.
func ipv6Packet(src, dst netip.Addr, icmp []byte) []byte {
	b := make([]byte, 40+len(icmp))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(icmp)))
	b[6] = 58 // ICMPv6
	b[7] = 255
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[40:], icmp)
	return b
}
