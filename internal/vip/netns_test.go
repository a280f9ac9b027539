package vip

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// requireNetnsEnv, when set to 1 (CI sets it), turns "cannot create network
// namespaces here" into a failure instead of a skip.
const requireNetnsEnv = "PGFM_REQUIRE_NETNS"

func requireNetns(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not running as root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "the ip command (iproute2) is not installed"
	}
	if why == "" {
		return
	}
	if os.Getenv(requireNetnsEnv) == "1" {
		t.Fatalf("vip: network namespaces unavailable (%s=1): %s", requireNetnsEnv, why)
	}
	t.Skipf("vip: network namespace test skipped: %s (run as root, or set %s=1 to make this a failure)", why, requireNetnsEnv)
}

// A host is one end of the test link: a network namespace with one veth.
type host struct {
	ns, ifname string
	mac        net.HardwareAddr
}

// Test link addresses (198.18.0.0/15 and fd00::/8 only).
const (
	addrA4, addrB4 = "198.18.0.1/24", "198.18.0.2/24"
	addrA6, addrB6 = "fd00:5e::1/64", "fd00:5e::2/64"
)

// newLink creates two namespaces joined by a veth pair, both ends up with an
// address of each family, and removes them in t.Cleanup. Nothing is created
// in, or changed in, the namespace the test runs in.
func newLink(t *testing.T) (a, b host) {
	t.Helper()
	requireNetns(t)
	tag := fmt.Sprintf("%d-%06x", os.Getpid(), rand.IntN(1<<24))
	a = host{ns: "pgfmvip-a-" + tag, ifname: "vipa"}
	b = host{ns: "pgfmvip-b-" + tag, ifname: "vipb"}
	for _, h := range []host{a, b} {
		run(t, "ip", "netns", "add", h.ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", h.ns).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v: %s", h.ns, err, out)
			}
		})
	}
	run(t, "ip", "link", "add", a.ifname, "netns", a.ns, "type", "veth", "peer", "name", b.ifname, "netns", b.ns)
	for _, h := range []struct {
		host
		v4, v6 string
	}{{a, addrA4, addrA6}, {b, addrB4, addrB6}} {
		run(t, "ip", "-n", h.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", h.ns, "addr", "add", h.v4, "dev", h.ifname)
		run(t, "ip", "-n", h.ns, "addr", "add", h.v6, "dev", h.ifname, "nodad")
		run(t, "ip", "-n", h.ns, "link", "set", h.ifname, "up")
	}
	a.mac, b.mac = macOf(t, a), macOf(t, b)
	return a, b
}

func macOf(t *testing.T, h host) net.HardwareAddr {
	t.Helper()
	f := strings.Fields(run(t, "ip", "-n", h.ns, "-o", "link", "show", "dev", h.ifname))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			mac, err := net.ParseMAC(f[i+1])
			if err != nil {
				t.Fatal(err)
			}
			return mac
		}
	}
	t.Fatalf("no MAC address for %s in %s: %q", h.ifname, h.ns, f)
	return nil
}

// run runs a test-setup command and returns its output; it fails the test
// when the command fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs f on an OS thread switched into namespace ns and switched back
// afterwards. A thread that cannot be switched back is never reused: its
// goroutine exits still locked, and the runtime ends the thread.
func in[T any](t *testing.T, ns string, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("get current namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open namespace %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", ns, err)} // thread stays locked and dies
			return
		}
		var r result
		func() {
			defer func() {
				if netns.Set(orig) == nil {
					runtime.UnlockOSThread()
				}
			}()
			r.v, r.err = f()
		}()
		ch <- r
	}()
	r := <-ch
	return r.v, r.err
}

// inErr is in for functions that only return an error.
func inErr(t *testing.T, ns string, f func() error) error {
	t.Helper()
	_, err := in(t, ns, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: last seen %s", within, what, state)
		}
		<-tick.C
	}
}

// neighbourMAC is h's neighbour-table link-layer address for ip ("" if none).
func neighbourMAC(t *testing.T, h host, ip string) string {
	t.Helper()
	f := strings.Fields(run(t, "ip", "-n", h.ns, "neigh", "show", "to", ip, "dev", h.ifname))
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}
