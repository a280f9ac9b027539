// Package campaign repeats fault scenarios many times and prints what it
// measured: how often the harness's cluster forms without collapsing and
// whether an isolated primary's fence always comes before the new
// primary's promotion (both on a busy machine), and whether a failover in
// synchronous mode ever loses an acknowledged write. `make campaign` runs it (CAMPAIGN_RUNS runs
// of each, default 20); without PGFM_CAMPAIGN_RUNS its tests skip.
package campaign

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/pgfm/pgfm/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanupBinary()
	os.Exit(code)
}

// runs is PGFM_CAMPAIGN_RUNS; the test skips when it is unset or 0.
func runs(t *testing.T) int {
	t.Helper()
	v := os.Getenv("PGFM_CAMPAIGN_RUNS")
	if v == "" {
		t.Skip("a campaign: set PGFM_CAMPAIGN_RUNS (make campaign)")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("PGFM_CAMPAIGN_RUNS=%q: want a number of runs", v)
	}
	if n == 0 {
		t.Skip("PGFM_CAMPAIGN_RUNS=0")
	}
	return n
}

// loadProcs is PGFM_CAMPAIGN_LOAD, the busy processes to run (default 2,
// one per core of the machines CI runs on).
func loadProcs(t *testing.T) int {
	t.Helper()
	v := os.Getenv("PGFM_CAMPAIGN_LOAD")
	if v == "" {
		return 2
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("PGFM_CAMPAIGN_LOAD=%q: want a number of busy processes", v)
	}
	return n
}

// busy starts n processes that spin on the CPU (as `stress -c n` would)
// until the test ends.
func busy(t *testing.T, n int) {
	t.Helper()
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start a busy process: %v", err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
}
