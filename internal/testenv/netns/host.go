//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Host is one machine of a Network: a namespace with loopback up and one
// interface on the bridge.
type Host struct {
	Name  string     // h1..hN or client
	NS    string     // its namespace, as ip netns names it
	IPv4  netip.Addr // on Iface, in 198.18.0.0/24
	IPv6  netip.Addr // on Iface, in fd00:198:18::/64; zero without Options.IPv6
	Iface string     // its veth inside NS: eth0
	MAC   net.HardwareAddr

	applied string // the nftables script last loaded here
}

// waitDelay bounds how long Wait waits for a killed command's output.
const waitDelay = 5 * time.Second

// Command runs name in the host's namespace through ip netns exec, in its own
// process group (killed whole when ctx ends). It suits short commands and
// long-running ones (agents, postgres) alike; to run a command prepared
// elsewhere, with its own SysProcAttr (a Credential, say), use Start.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// Run runs name in the host's namespace and returns its combined output,
// failing the test when it fails.
func (h *Host) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("netns: %s: %s %s: %v\n%s", h.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start starts cmd (not yet started, built by exec.Command or anyone) in the
// host's namespace: it is forked from a thread that entered the namespace,
// so cmd keeps its own SysProcAttr (Credential, Setpgid), which ip netns exec
// could not honour. Pdeathsig is refused: it would follow that thread.
func (h *Host) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Pdeathsig != 0 {
		return errors.New("netns: Start: Pdeathsig is tied to the forking thread, not the test")
	}
	return h.Do(cmd.Start)
}

// Do calls fn on an OS thread inside the host's namespace: sockets fn opens
// belong to the namespace for good, whatever goroutine uses them later.
// Goroutines fn starts run elsewhere, in the test's own namespace.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread goes back to the runtime only once back in its own
		// namespace; otherwise it stays locked and ends with this goroutine.
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer home.Close()
		if err := setns(h.NS); err != nil {
			errc <- err
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// DialContext connects from the host, as net.Dialer does (use address
// literals). It fits pgx's DialFunc and http.Transport's DialContext.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens in the host's namespace, as net.Listen does.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket in the host's namespace, as
// net.ListenPacket does.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() (err error) {
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// setns moves the calling thread into the named network namespace.
func setns(ns string) error {
	f, err := os.Open(nsPath(ns))
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns: setns %s: %w", ns, err)
	}
	return nil
}

// waitUp polls until the host's interface is up, both ends attached.
func (h *Host) waitUp() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		out, err := run(nil, "ip", "-n", h.NS, "-o", "link", "show", h.Iface)
		if err == nil && strings.Contains(out, "state UP") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after %v: %s %v", h.Iface, readyTimeout, out, err)
		}
		time.Sleep(pollInterval)
	}
}
