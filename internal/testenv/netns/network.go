//go:build linux

package netns

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv, when set to 1 (CI sets it), turns missing namespace support
// into a test failure instead of a skip.
const RequireEnv = "PGFM_REQUIRE_NETNS"

// Prefix starts the name of every namespace this package creates.
const Prefix = "pgfm-"

// ClientName names the host that New adds besides h1..hN.
const ClientName = "client"

// Addressing: every network is alone on its bridge, so all use the same
// prefixes. Host hI is .I (1..maxHosts), the client .100; .200 and up are
// never given to a host (FreeAddr hands them out, for virtual IPs).
var (
	prefix4 = netip.MustParsePrefix("198.18.0.0/24")
	prefix6 = netip.MustParsePrefix("fd00:198:18::/64")
)

const (
	maxHosts   = 99
	clientOct  = 100
	firstFree  = 200
	lastFree   = 254
	hostIface  = "eth0" // each host's end of its veth pair
	bridgeName = "br0"
)

// Timeouts of the commands that build and fault the network.
const (
	cmdTimeout   = 30 * time.Second
	readyTimeout = 10 * time.Second
	pollInterval = 10 * time.Millisecond
)

// Options shapes a Network.
type Options struct {
	Hosts int  // h1..hN; the client host is always added
	IPv6  bool // also give every host an fd00:: address
}

// Network is a bridge in a namespace of its own and hosts attached to it by
// veth pairs, each host in its own namespace.
type Network struct {
	// Name prefixes every namespace of this network: pgfm-PID-RAND.
	Name string
	// Bridge is the namespace holding the bridge.
	Bridge string
	// Prefix4 and Prefix6 are the hosts' subnets (Prefix6 unused without
	// Options.IPv6).
	Prefix4, Prefix6 netip.Prefix

	ipv6  bool
	hosts []*Host // h1..hN, client

	mu     sync.Mutex
	faults []fault
}

// New creates the network and registers its removal with t.Cleanup. It skips
// the test (fails it under PGFM_REQUIRE_NETNS=1) when namespaces cannot be
// made here.
func New(t testing.TB, opts Options) *Network {
	t.Helper()
	if opts.Hosts < 0 || opts.Hosts > maxHosts {
		t.Fatalf("netns: Options.Hosts = %d: want 0..%d", opts.Hosts, maxHosts)
	}
	Require(t)
	sweep()
	n := &Network{
		Name:    fmt.Sprintf("%s%d-%04x", Prefix, os.Getpid(), rand.IntN(1<<16)),
		Prefix4: prefix4, Prefix6: prefix6,
		ipv6: opts.IPv6,
	}
	n.Bridge = n.Name + "-br"
	t.Cleanup(func() {
		if err := n.remove(); err != nil {
			t.Errorf("netns: cleanup %s: %v", n.Name, err)
		}
	})
	if err := n.build(opts.Hosts); err != nil {
		t.Fatalf("netns: %v", err)
	}
	return n
}

// Require skips the test (fails it under PGFM_REQUIRE_NETNS=1) unless this
// process can create namespaces and filter their traffic: root, ip netns, nft.
func Require(t testing.TB) {
	t.Helper()
	if err := available(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("netns: network namespaces unavailable (%s=1): %v", RequireEnv, err)
		}
		t.Skipf("netns: network namespaces unavailable, skipping (run as root with iproute2 and nftables, or set %s=1 to fail): %v", RequireEnv, err)
	}
}

var (
	probeOnce sync.Once
	probeErr  error
)

// available checks once per process, by creating and removing a namespace.
func available() error {
	probeOnce.Do(func() {
		if os.Geteuid() != 0 {
			probeErr = errors.New("not root")
			return
		}
		for _, bin := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(bin); err != nil {
				probeErr = err
				return
			}
		}
		name := fmt.Sprintf("%s%d-probe", Prefix, os.Getpid())
		if _, err := run(nil, "ip", "netns", "add", name); err != nil {
			probeErr = err
			return
		}
		if _, err := run(nil, "ip", "netns", "delete", name); err != nil {
			probeErr = err
		}
	})
	return probeErr
}

// Host returns the host called name (h1..hN or client), or nil.
func (n *Network) Host(name string) *Host {
	for _, h := range n.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Hosts returns h1..hN then the client.
func (n *Network) Hosts() []*Host { return append([]*Host(nil), n.hosts...) }

// Client is the client host.
func (n *Network) Client() *Host { return n.hosts[len(n.hosts)-1] }

// FreeAddr returns the i-th address (i from 0 to 54) of the hosts' subnets
// that no host has, IPv4 and IPv6: room for virtual IPs.
func (n *Network) FreeAddr(i int) (v4, v6 netip.Addr) {
	if i < 0 || firstFree+i > lastFree {
		panic(fmt.Sprintf("netns: FreeAddr(%d): want 0..%d", i, lastFree-firstFree))
	}
	return addr(prefix4, firstFree+i), addr(prefix6, firstFree+i)
}

// build creates the bridge namespace, then every host.
func (n *Network) build(hosts int) error {
	steps := [][]string{
		{"ip", "netns", "add", n.Bridge},
		{"ip", "-n", n.Bridge, "link", "set", "lo", "up"},
		{"ip", "-n", n.Bridge, "link", "add", bridgeName, "type", "bridge", "stp_state", "0", "mcast_snooping", "0"},
		{"ip", "-n", n.Bridge, "link", "set", bridgeName, "up"},
	}
	if err := runAll(steps); err != nil {
		return err
	}
	for i := 1; i <= hosts; i++ {
		n.hosts = append(n.hosts, n.newHost(fmt.Sprintf("h%d", i), i))
	}
	n.hosts = append(n.hosts, n.newHost(ClientName, clientOct))
	for _, h := range n.hosts {
		if err := n.attach(h); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	for _, h := range n.hosts {
		if err := h.waitUp(); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return nil
}

func (n *Network) newHost(name string, octet int) *Host {
	h := &Host{
		Name:  name,
		NS:    n.Name + "-" + name,
		IPv4:  addr(prefix4, octet),
		Iface: hostIface,
		MAC:   net.HardwareAddr{0x02, 0x70, 0x67, 0, 0, byte(octet)},
	}
	if n.ipv6 {
		h.IPv6 = addr(prefix6, octet)
	}
	return h
}

// attach creates h's namespace and its veth pair: eth0 in h's namespace,
// the peer (named after the host) a port of the bridge.
func (n *Network) attach(h *Host) error {
	steps := [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		{"ip", "-n", n.Bridge, "link", "add", h.Name, "type", "veth",
			"peer", "name", h.Iface, "address", h.MAC.String(), "netns", h.NS},
		{"ip", "-n", n.Bridge, "link", "set", h.Name, "master", bridgeName, "up"},
		{"ip", "-n", h.NS, "addr", "add", netip.PrefixFrom(h.IPv4, prefix4.Bits()).String(), "dev", h.Iface},
	}
	if h.IPv6.IsValid() {
		steps = append(steps, []string{"ip", "-n", h.NS, "addr", "add",
			netip.PrefixFrom(h.IPv6, prefix6.Bits()).String(), "dev", h.Iface, "nodad"})
	}
	steps = append(steps, []string{"ip", "-n", h.NS, "link", "set", h.Iface, "up"})
	return runAll(steps)
}

// remove kills what still runs in the network's namespaces and deletes
// them; deleting a namespace destroys its interfaces, the bridge with it.
func (n *Network) remove() error {
	var errs []error
	names := []string{}
	for _, h := range n.hosts {
		names = append(names, h.NS)
	}
	names = append(names, n.Bridge)
	for _, ns := range names {
		if err := deleteNS(ns); err != nil {
			errs = append(errs, err)
		}
	}
	// A host whose attach failed half-way may have a namespace n.hosts
	// does not list yet: sweep by name.
	for _, ns := range listNS() {
		if len(ns) > len(n.Name) && ns[:len(n.Name)+1] == n.Name+"-" {
			if err := deleteNS(ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// deleteNS SIGKILLs every process in ns, waits for them to go, and deletes
// it. A namespace that does not exist is fine.
func deleteNS(ns string) error {
	if !exists(ns) {
		return nil
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		pids := nsPIDs(ns)
		if len(pids) == 0 {
			break
		}
		ours := slices.Contains(pids, os.Getpid())
		if time.Now().After(deadline) {
			if ours && len(pids) == 1 {
				// Only our own main thread is there, inside a Do whose
				// request has not returned yet (a connect the network
				// drops): nothing the test started is left. Removing the
				// name is enough; the kernel frees the namespace when the
				// thread goes back to its own.
				break
			}
			return fmt.Errorf("namespace %s: processes %v outlive SIGKILL", ns, pids)
		}
		for _, p := range pids {
			// A thread of ours may be inside Do right now (a request
			// still in flight): wait for it to come back out.
			if p != os.Getpid() {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		time.Sleep(pollInterval)
	}
	_, err := run(nil, "ip", "netns", "delete", ns)
	return err
}

func exists(ns string) bool {
	_, err := os.Stat(nsPath(ns))
	return err == nil
}

func nsPath(ns string) string { return "/run/netns/" + ns }

// listNS lists the names under /run/netns that start with Prefix.
func listNS() []string {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if len(e.Name()) > len(Prefix) && e.Name()[:len(Prefix)] == Prefix {
			names = append(names, e.Name())
		}
	}
	return names
}

// sweep deletes namespaces a test process that no longer runs left behind
// (killed before its cleanup): their names carry its pid.
func sweep() {
	for _, ns := range listNS() {
		var pid int
		var rest string
		if k, _ := fmt.Sscanf(ns, Prefix+"%d-%s", &pid, &rest); k != 2 || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = deleteNS(ns)
		}
	}
}

// addr is the address octet places into p (octet < 256).
func addr(p netip.Prefix, octet int) netip.Addr {
	b := p.Addr().AsSlice()
	b[len(b)-1] = byte(octet)
	a, _ := netip.AddrFromSlice(b)
	return a
}
