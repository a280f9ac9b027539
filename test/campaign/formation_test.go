package campaign

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// TestFormationUnderLoad forms the harness's standard cluster (a primary,
// two standbys and a witness, the test timings) again and again with the
// CPU kept busy, and counts the formations that collapse: a failover or a
// fence before the cluster is healthy, or no healthy cluster in time.
func TestFormationUnderLoad(t *testing.T) {
	n := runs(t)
	procs := loadProcs(t)
	var collapsed []string
	var took []time.Duration
	for i := range n {
		start := time.Now()
		ok := t.Run(fmt.Sprintf("run%02d", i+1), func(t *testing.T) {
			busy(t, procs)
			c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 2, Witnesses: 1})
			c.StartAll(t)
			if at, fenced := c.Primary().LoggedAt("fencing the isolated primary's database"); fenced {
				t.Errorf("the primary fenced itself at %s while the cluster formed", at.Format(time.RFC3339Nano))
			}
		})
		if !ok {
			collapsed = append(collapsed, fmt.Sprintf("run%02d", i+1))
		} else {
			took = append(took, time.Since(start))
		}
	}
	t.Logf("formations under a load of %d busy processes: %d of %d collapsed %v; healthy ones took %v",
		procs, len(collapsed), n, collapsed, rounded(took))
	fmt.Printf("campaign: formation under load %d: %d of %d collapsed\n", procs, len(collapsed), n)
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}
