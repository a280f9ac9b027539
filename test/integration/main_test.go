// Package integration runs pgfm agents as real processes against real
// PostgreSQL servers and their embedded etcd members (or an external etcd
// cluster), on loopback.
package integration

import (
	"os"
	"testing"

	"github.com/pgfm/pgfm/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	testenv.CleanupEtcdBinary()
	os.Exit(code)
}
