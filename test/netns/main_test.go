// Package netns runs pgfm clusters whose nodes are hosts in network
// namespaces (internal/testenv/netns): partitions, a virtual IP that moves,
// load-balancer health endpoints and IPv6-only networks.
package netns

import (
	"os"
	"testing"

	"github.com/pgfm/pgfm/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}
