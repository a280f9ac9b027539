// Package bench measures failovers end to end: real PostgreSQL servers and
// pgfm agents on loopback, a client writing every 10 ms, faults injected on
// the primary. It asserts nothing about timings: `make bench` prints them.
package bench

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
