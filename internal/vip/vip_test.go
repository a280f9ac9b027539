package vip

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// staleMAC is what observers had cached for the virtual IP before it moved
// (a locally administered address no host in the test has).
const staleMAC = "02:00:5e:00:53:01"

func TestAcquireAnnounceAnswersRelease(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
	}{
		{"ipv4 host prefix", Config{Address: netip.MustParseAddr("198.18.0.100")}},
		{"ipv4 /24 beside the host address", Config{Address: netip.MustParseAddr("198.18.0.101"), Prefix: 24}},
		{"ipv6 host prefix", Config{Address: netip.MustParseAddr("fd00:5e::100")}},
		{"ipv6 /64 beside the host address", Config{Address: netip.MustParseAddr("fd00:5e::101"), Prefix: 64}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := newLink(t)
			ca, cb := tt.c, tt.c
			ca.Interface, cb.Interface = a.ifname, b.ifname
			vip := tt.c.Address.String()
			ctx := context.Background()

			held := func(h host, c Config) bool {
				t.Helper()
				ok, err := in(t, h.ns, func() (bool, error) { return Held(c) })
				if err != nil {
					t.Fatalf("Held in %s: %v", h.ns, err)
				}
				return ok
			}
			answers := func(h host, c Config, timeout time.Duration) bool {
				t.Helper()
				ok, err := in(t, h.ns, func() (bool, error) { return Answers(ctx, c, timeout) })
				if err != nil {
					t.Fatalf("Answers in %s: %v", h.ns, err)
				}
				return ok
			}

			if held(a, ca) {
				t.Fatal("Held before Acquire")
			}
			if answers(b, cb, 300*time.Millisecond) {
				t.Fatal("Answers before Acquire: someone answers for an address nobody holds")
			}
			// B cached some other host's MAC for the address (the old primary).
			run(t, "ip", "-n", b.ns, "neigh", "replace", vip, "dev", b.ifname, "lladdr", staleMAC, "nud", "stale")

			if err := inErr(t, a.ns, func() error { return Acquire(ctx, ca) }); err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			if !held(a, ca) {
				t.Fatal("not Held after Acquire")
			}
			if held(b, cb) {
				t.Fatal("Held on the observer")
			}
			shown := run(t, "ip", "-n", a.ns, "-o", "addr", "show", "dev", a.ifname, "to", vip)
			want := vip + "/" + strconv.Itoa(tt.c.prefix())
			if !strings.Contains(shown, want) {
				t.Fatalf("ip addr shows %q, want %s", shown, want)
			}
			if tt.c.Address.Is6() {
				if strings.Contains(shown, "tentative") || !strings.Contains(shown, "deprecated") {
					t.Fatalf("IPv6 virtual IP should be usable at once (not tentative) and deprecated as a source: %q", shown)
				}
			}
			// The announcement replaced B's stale entry with A's MAC.
			waitFor(t, 3*time.Second, "observer's neighbour entry for the virtual IP shows the holder's MAC "+a.mac.String(),
				func() (bool, string) {
					m := neighbourMAC(t, b, vip)
					return m == a.mac.String(), m
				})

			// Acquire is idempotent: no error, still one address.
			if err := inErr(t, a.ns, func() error { return Acquire(ctx, ca) }); err != nil {
				t.Fatalf("second Acquire: %v", err)
			}
			if n := strings.Count(run(t, "ip", "-n", a.ns, "-o", "addr", "show", "dev", a.ifname, "to", vip), vip+"/"); n != 1 {
				t.Fatalf("after two Acquires the address is there %d times, want 1", n)
			}

			if !answers(b, cb, 2*time.Second) {
				t.Fatal("Answers from the observer = false while the holder has the address")
			}
			if answers(a, ca, 300*time.Millisecond) {
				t.Fatal("Answers on the holder = true: only the holder has it, and its own address is Held's business")
			}

			if err := inErr(t, a.ns, func() error { return Release(ctx, ca) }); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if held(a, ca) {
				t.Fatal("Held after Release")
			}
			if err := inErr(t, a.ns, func() error { return Release(ctx, ca) }); err != nil {
				t.Fatalf("second Release: %v", err)
			}
			if answers(b, cb, 500*time.Millisecond) {
				t.Fatal("Answers from the observer = true after Release")
			}
			// The host's own addresses are untouched.
			kept := run(t, "ip", "-n", a.ns, "-o", "addr", "show", "dev", a.ifname)
			for _, own := range []string{addrA4, addrA6} {
				if !strings.Contains(kept, own) {
					t.Fatalf("Release removed the host address %s: %q", own, kept)
				}
			}
		})
	}
}

// TestMove is a failover on one link: A holds the address, releases it, B
// acquires it, and A's neighbour entry (stale, as a client's would be)
// follows the address to B's MAC.
func TestMove(t *testing.T) {
	t.Parallel()
	a, b := newLink(t)
	ctx := context.Background()
	for _, addr := range []string{"198.18.0.110", "fd00:5e::110"} {
		c := Config{Address: netip.MustParseAddr(addr)}
		ca, cb := c, c
		ca.Interface, cb.Interface = a.ifname, b.ifname
		if err := inErr(t, a.ns, func() error { return Acquire(ctx, ca) }); err != nil {
			t.Fatalf("%s: Acquire on A: %v", addr, err)
		}
		// B asks, so it learns A's MAC the ordinary way.
		ok, err := in(t, b.ns, func() (bool, error) { return Answers(ctx, cb, 2*time.Second) })
		if err != nil || !ok {
			t.Fatalf("%s: Answers from B = %v, %v; want true", addr, ok, err)
		}
		run(t, "ip", "-n", a.ns, "neigh", "replace", addr, "dev", a.ifname, "lladdr", staleMAC, "nud", "stale")
		if err := inErr(t, a.ns, func() error { return Release(ctx, ca) }); err != nil {
			t.Fatalf("%s: Release on A: %v", addr, err)
		}
		ok, err = in(t, b.ns, func() (bool, error) { return Answers(ctx, cb, 300*time.Millisecond) })
		if err != nil || ok {
			t.Fatalf("%s: Answers from B after A released = %v, %v; want false", addr, ok, err)
		}
		if err := inErr(t, b.ns, func() error { return Acquire(ctx, cb) }); err != nil {
			t.Fatalf("%s: Acquire on B: %v", addr, err)
		}
		waitFor(t, 3*time.Second, addr+": A's neighbour entry follows the address to B's MAC "+b.mac.String(),
			func() (bool, string) {
				m := neighbourMAC(t, a, addr)
				return m == b.mac.String(), m
			})
		ok, err = in(t, a.ns, func() (bool, error) { return Answers(ctx, ca, 2*time.Second) })
		if err != nil || !ok {
			t.Fatalf("%s: Answers from A after the move = %v, %v; want true", addr, ok, err)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	a, _ := newLink(t)
	run(t, "ip", "-n", a.ns, "link", "add", "vipdown", "type", "veth", "peer", "name", "vipdown2") // stays down
	ctx := context.Background()
	missing := Config{Address: netip.MustParseAddr("198.18.0.120"), Interface: "nosuch0"}
	down := Config{Address: netip.MustParseAddr("198.18.0.120"), Interface: "vipdown"}
	up := Config{Address: netip.MustParseAddr("198.18.0.120"), Interface: a.ifname}

	for _, tt := range []struct {
		name string
		f    func() error
		want error
	}{
		{"Acquire on a missing interface", func() error { return Acquire(ctx, missing) }, ErrNoInterface},
		{"Release on a missing interface", func() error { return Release(ctx, missing) }, ErrNoInterface},
		{"Held on a missing interface", func() error { _, err := Held(missing); return err }, ErrNoInterface},
		{"Answers on a missing interface", func() error { _, err := Answers(ctx, missing, time.Second); return err }, ErrNoInterface},
		{"Acquire on a down interface", func() error { return Acquire(ctx, down) }, ErrInterfaceDown},
		{"Answers on a down interface", func() error { _, err := Answers(ctx, down, time.Second); return err }, ErrInterfaceDown},
		{"Acquire with a cancelled context", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return Acquire(c, up)
		}, context.Canceled},
		{"Answers ends with its context", func() error {
			c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := Answers(c, up, time.Minute)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Answers took %v after its context ended", d)
			}
			return err
		}, context.DeadlineExceeded},
	} {
		err := inErr(t, a.ns, tt.f)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
	// Validation comes first and needs no interface.
	if err := Acquire(ctx, Config{Address: netip.MustParseAddr("fe80::1"), Interface: "x"}); err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("Acquire(link-local) = %v, want the validation error", err)
	}
	if held, err := in(t, a.ns, func() (bool, error) { return Held(up) }); err != nil || held {
		t.Errorf("after failed attempts Held = %v, %v; want false, nil", held, err)
	}
}
