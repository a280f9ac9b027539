package testenv

import (
	"net"
	"strconv"
	"testing"
)

func TestHostsDistinctLoopback(t *testing.T) {
	hosts := Hosts(t, 5)
	seen := map[string]bool{}
	for _, h := range hosts {
		ip := net.ParseIP(h)
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			t.Fatalf("%q is not an IPv4 loopback address", h)
		}
		if seen[h] {
			t.Fatalf("%q twice in %v", h, hosts)
		}
		seen[h] = true
	}
}

func TestFreePortBindsOnEveryHost(t *testing.T) {
	hosts := Hosts(t, 3)
	port := FreePort(t, hosts...)
	for _, h := range hosts {
		l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d not free on %s: %v", port, h, err)
		}
		l.Close()
	}
}
