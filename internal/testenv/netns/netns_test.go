//go:build linux

package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv/netns"
)

const (
	tcpPort = 7000
	udpPort = 7001
	// blockedAfter is how long a dial that a fault blocks gets to fail on
	// its own: unfaulted, one crosses the bridge in well under a millisecond.
	blockedAfter = 300 * time.Millisecond
	// healTimeout bounds how long traffic takes to flow again after Heal
	// (the neighbour entry may have to be resolved again).
	healTimeout = 10 * time.Second
)

// helperEnv makes the test binary a helper process (see TestHelperProcess).
const helperEnv = "PGFM_NETNS_HELPER"

// TestHelperProcess is not a test: run with helperEnv set, it serves as a
// process inside a namespace. Arguments after "--": "listen ADDR" accepts
// TCP connections on ADDR and closes them, after printing "ready".
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	args := os.Args
	for len(args) > 0 && args[0] != "--" {
		args = args[1:]
	}
	if len(args) != 3 || args[1] != "listen" {
		fmt.Fprintf(os.Stderr, "helper: bad arguments %q\n", os.Args)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Close()
	}
}

func helperArgs(args ...string) []string {
	return append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)
}

// families runs f once over IPv4 and once over IPv6, each on a new network.
func families(t *testing.T, hosts int, f func(t *testing.T, n *netns.Network, addr func(*netns.Host) netip.Addr)) {
	for _, fam := range []string{"ipv4", "ipv6"} {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			n := netns.New(t, netns.Options{Hosts: hosts, IPv6: true})
			addr := func(h *netns.Host) netip.Addr { return h.IPv4 }
			if fam == "ipv6" {
				addr = func(h *netns.Host) netip.Addr { return h.IPv6 }
			}
			f(t, n, addr)
		})
	}
}

// serve accepts TCP connections on every address of h and closes them.
func serve(t *testing.T, h *netns.Host) {
	t.Helper()
	l, err := h.Listen("tcp", ":"+strconv.Itoa(tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dial connects from h to addr's test port, giving up after timeout.
func dial(from *netns.Host, to netip.Addr, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", netip.AddrPortFrom(to, tcpPort).String())
	if err != nil {
		return err
	}
	return c.Close()
}

// reachable waits until from can connect to to.
func reachable(t *testing.T, from *netns.Host, to netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(healTimeout)
	for {
		err := dial(from, to, blockedAfter)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot reach %s within %v: %v", from.Name, to, healTimeout, err)
		}
	}
}

// blocked checks that from cannot connect to to.
func blocked(t *testing.T, from *netns.Host, to netip.Addr) {
	t.Helper()
	if err := dial(from, to, blockedAfter); err == nil {
		t.Fatalf("%s reached %s, want it blocked", from.Name, to)
	}
}

func TestHostsReachEachOther(t *testing.T) {
	t.Parallel()
	families(t, 2, func(t *testing.T, n *netns.Network, addr func(*netns.Host) netip.Addr) {
		hosts := n.Hosts()
		if len(hosts) != 3 || hosts[0].Name != "h1" || hosts[1].Name != "h2" || hosts[2] != n.Client() || n.Host("h2") != hosts[1] {
			t.Fatalf("hosts %v", hosts)
		}
		for _, h := range hosts {
			serve(t, h)
		}
		for _, from := range hosts {
			for _, to := range hosts {
				reachable(t, from, addr(to))
			}
			// Loopback is up in every namespace.
			lo := netip.MustParseAddr("127.0.0.1")
			if addr(from).Is6() {
				lo = netip.IPv6Loopback()
			}
			reachable(t, from, lo)
		}
	})
}

func TestCommandAndStart(t *testing.T) {
	t.Parallel()
	n := netns.New(t, netns.Options{Hosts: 2, IPv6: true})
	h1, h2 := n.Host("h1"), n.Host("h2")
	out := h1.Run(t, "ip", "-o", "addr", "show", "dev", h1.Iface)
	for _, a := range []netip.Addr{h1.IPv4, h1.IPv6} {
		if !strings.Contains(out, a.String()+"/") {
			t.Errorf("ip addr in %s lacks %s:\n%s", h1.NS, a, out)
		}
	}
	if out := h1.Run(t, "ip", "-o", "link", "show", "lo"); !strings.Contains(out, ",UP") {
		t.Errorf("loopback down in %s:\n%s", h1.NS, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Through ip netns exec.
	cmd := h2.Command(ctx, os.Args[0], helperArgs("listen", ":7000")...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	startHelper(t, cmd, func(c *exec.Cmd) error { return c.Start() })
	reachable(t, n.Client(), h2.IPv4)
	// Forked inside the namespace, with its own SysProcAttr.
	cmd = exec.CommandContext(ctx, os.Args[0], helperArgs("listen", "["+h1.IPv6.String()+"]:7000")...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	startHelper(t, cmd, h1.Start)
	reachable(t, n.Client(), h1.IPv6)
}

// startHelper starts a helper process and waits for its "ready".
func startHelper(t *testing.T, cmd *exec.Cmd, start func(*exec.Cmd) error) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
}

func TestIsolate(t *testing.T) {
	t.Parallel()
	families(t, 2, func(t *testing.T, n *netns.Network, addr func(*netns.Host) netip.Addr) {
		h1, h2, client := n.Host("h1"), n.Host("h2"), n.Client()
		for _, h := range n.Hosts() {
			serve(t, h)
		}
		reachable(t, h1, addr(h2))
		reachable(t, h2, addr(h1))

		n.Isolate(t, h1)
		blocked(t, h1, addr(h2))
		blocked(t, h2, addr(h1))
		blocked(t, client, addr(h1))
		blocked(t, h1, addr(client))
		reachable(t, client, addr(h2))
		reachable(t, h1, addr(h1)) // its own address, over loopback

		n.Heal(t)
		reachable(t, h1, addr(h2))
		reachable(t, h2, addr(h1))
		reachable(t, client, addr(h1))
	})
}

func TestCut(t *testing.T) {
	t.Parallel()
	families(t, 2, func(t *testing.T, n *netns.Network, addr func(*netns.Host) netip.Addr) {
		h1, h2, client := n.Host("h1"), n.Host("h2"), n.Client()
		for _, h := range n.Hosts() {
			serve(t, h)
		}
		reachable(t, h1, addr(h2))

		n.Cut(t, h1, h2)
		blocked(t, h1, addr(h2))
		blocked(t, h2, addr(h1))
		reachable(t, client, addr(h1))
		reachable(t, client, addr(h2))

		n.Heal(t, h2)
		reachable(t, h1, addr(h2))
		reachable(t, h2, addr(h1))
	})
}

func TestCutOneWay(t *testing.T) {
	t.Parallel()
	families(t, 2, func(t *testing.T, n *netns.Network, addr func(*netns.Host) netip.Addr) {
		h1, h2, client := n.Host("h1"), n.Host("h2"), n.Client()
		for _, h := range n.Hosts() {
			serve(t, h)
		}
		reachable(t, h1, addr(h2))
		in1, in2 := udpListen(t, h1), udpListen(t, h2)

		n.CutOneWay(t, h1, h2)
		// TCP needs both ways: it fails from either side.
		blocked(t, h1, addr(h2))
		blocked(t, h2, addr(h1))
		// Datagrams from h2 still reach h1; none from h1 reaches h2.
		if err := udpArrives(h2, in1, addr(h1)); err != nil {
			t.Fatalf("h2 -> h1: %v", err)
		}
		if err := udpArrives(h1, in2, addr(h2)); err == nil {
			t.Fatal("h1 -> h2: a datagram arrived through the one-way cut")
		}
		reachable(t, client, addr(h1))
		reachable(t, client, addr(h2))

		n.Heal(t, h1)
		reachable(t, h1, addr(h2))
		if err := udpArrives(h1, in2, addr(h2)); err != nil {
			t.Fatalf("h1 -> h2 after Heal: %v", err)
		}
	})
}

func TestLoss(t *testing.T) {
	t.Parallel()
	families(t, 2, func(t *testing.T, n *netns.Network, addr func(*netns.Host) netip.Addr) {
		h1, h2, client := n.Host("h1"), n.Host("h2"), n.Client()
		for _, h := range n.Hosts() {
			serve(t, h)
		}
		reachable(t, h1, addr(h2))
		reachable(t, client, addr(h1))

		n.Loss(t, h1, 100)
		blocked(t, h1, addr(h2))
		blocked(t, client, addr(h1))
		reachable(t, client, addr(h2))
		n.Loss(t, h1, 0)
		reachable(t, h1, addr(h2))
		reachable(t, client, addr(h1))

		n.Loss(t, h1, 100)
		blocked(t, h2, addr(h1))
		n.Heal(t, h1)
		reachable(t, h2, addr(h1))

		// Half of what h1 sends is lost: far from none and from all.
		in2 := udpListen(t, h2)
		const sent = 400
		got := udpCount(t, n, h1, in2, addr(h2), 50, sent)
		if got < sent/5 || got > sent*4/5 {
			t.Fatalf("%d of %d datagrams arrived under 50%% loss", got, sent)
		}
		t.Logf("%d of %d datagrams arrived under 50%% loss", got, sent)
	})
}

// udpListen opens a UDP socket on h's test port.
func udpListen(t *testing.T, h *netns.Host) net.PacketConn {
	t.Helper()
	c, err := h.ListenPacket("udp", ":"+strconv.Itoa(udpPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpArrives sends datagrams from h to the test port at to, until one
// reaches in or blockedAfter passes.
func udpArrives(from *netns.Host, in net.PacketConn, to netip.Addr) error {
	out, err := from.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	defer out.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, udpPort))
	deadline := time.Now().Add(blockedAfter)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if _, err := out.WriteTo([]byte("ping"), dst); err != nil {
			return err
		}
		in.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, _, err := in.ReadFrom(buf); err == nil {
			return nil
		}
	}
	return errors.New("no datagram arrived")
}

// udpCount sends count datagrams from h to to under percent% loss, then a
// last one with the loss removed, and counts those in received before it.
func udpCount(t *testing.T, n *netns.Network, from *netns.Host, in net.PacketConn, to netip.Addr, percent, count int) int {
	t.Helper()
	out, err := from.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, udpPort))
	done := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		got := 0
		in.SetReadDeadline(time.Now().Add(healTimeout))
		for {
			k, _, err := in.ReadFrom(buf)
			if err != nil || string(buf[:k]) == "end" {
				done <- got
				return
			}
			got++
		}
	}()
	n.Loss(t, from, percent)
	for range count {
		if _, err := out.WriteTo([]byte("data"), dst); err != nil {
			t.Fatal(err)
		}
	}
	n.Heal(t, from)
	if _, err := out.WriteTo([]byte("end"), dst); err != nil {
		t.Fatal(err)
	}
	return <-done
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	t.Parallel()
	var n *netns.Network
	var helper *exec.Cmd
	t.Run("network", func(t *testing.T) {
		n = netns.New(t, netns.Options{Hosts: 1, IPv6: true})
		other := netns.New(t, netns.Options{})
		if other.Name == n.Name {
			t.Fatalf("two networks named %s", n.Name)
		}
		n.Isolate(t, n.Host("h1"))
		// Left running: the cleanup must kill it before deleting h1.
		helper = n.Host("h1").Command(context.Background(), os.Args[0], helperArgs("listen", ":7000")...)
		helper.Env = append(os.Environ(), helperEnv+"=1")
		startHelper(t, helper, func(c *exec.Cmd) error { return c.Start() })
		if out := list(t); !strings.Contains(out, n.Name+"-h1") || !strings.Contains(out, n.Bridge) {
			t.Fatalf("ip netns list lacks %s:\n%s", n.Name, out)
		}
	})
	if n == nil {
		t.Fatal("no network made")
	}
	if out := list(t); strings.Contains(out, n.Name) {
		t.Fatalf("namespaces of %s left behind:\n%s", n.Name, out)
	}
	if err := helper.Wait(); err == nil {
		t.Fatal("helper process exited cleanly, want it killed")
	}
}

func list(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	return string(out)
}
