package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// Hosts returns n distinct loopback addresses 127.A.B.C. A and B are random
// (A in 100..250), so parallel test processes, each on its own addresses,
// practically never clash and one test's cut or leftover cannot touch another's.
func Hosts(t testing.TB, n int) []string {
	t.Helper()
	if n < 1 || n > 254 {
		t.Fatalf("testenv: Hosts(%d): want 1..254", n)
	}
	a, b := 100+rand.IntN(151), rand.IntN(256)
	hosts := make([]string, n)
	for i, c := range rand.Perm(254)[:n] {
		hosts[i] = fmt.Sprintf("127.%d.%d.%d", a, b, c+1)
	}
	return hosts
}

// Port range FreePort draws from: below Linux's ephemeral range (32768+), so
// the kernel does not hand our port to some outgoing connection meanwhile.
const (
	minPort = 20000
	maxPort = 32000
)

// FreePort returns a TCP port nobody listens on at any of hosts (127.0.0.1
// when none is given).
func FreePort(t testing.TB, hosts ...string) int {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	var lastErr error
	for range 200 {
		port := minPort + rand.IntN(maxPort-minPort)
		if lastErr = bindable(port, hosts); lastErr == nil {
			return port
		}
	}
	t.Fatalf("testenv: no free port on %v: %v", hosts, lastErr)
	return 0
}

// bindable tries to listen on port at every host, releasing them all.
func bindable(port int, hosts []string) error {
	for _, h := range hosts {
		l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}
