package campaign

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// fenceRun is what one partition measured, each time from the cut.
type fenceRun struct {
	name      string
	leadEtcd  bool // the old primary's etcd member led at the cut
	fenceAt   time.Duration
	promoteAt time.Duration
	failed    string
}

// TestFenceOrderUnderLoad cuts the primary's host off, again and again with
// the CPU kept busy, every other time just after making its etcd member the
// etcd leader (then with etcd's default 1 s election timeout), and checks DESIGN.md §4 invariant 1 from the agents' own
// logs: the isolated primary's database is stopped before the new primary
// starts its promotion. It prints every run's times.
func TestFenceOrderUnderLoad(t *testing.T) {
	n := runs(t)
	procs := loadProcs(t)
	var rows []fenceRun
	for i := range n {
		r := fenceRun{name: fmt.Sprintf("run%02d", i+1), leadEtcd: i%2 == 0}
		t.Run(r.name, func(t *testing.T) {
			busy(t, procs)
			partitionRun(t, &r)
			if t.Failed() && r.failed == "" {
				r.failed = "failed"
			}
		})
		rows = append(rows, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "isolated primary under a load of %d busy processes: times after the cut\n", procs)
	fmt.Fprintf(&b, "| run | etcd leader on the old primary (election 1 s; else 0.5 s) | database stopped | promotion started | fence first by |\n|---|---|---|---|---|\n")
	first := 0
	for _, r := range rows {
		if r.failed != "" {
			fmt.Fprintf(&b, "| %s | %v | %s |  |  |\n", r.name, r.leadEtcd, r.failed)
			continue
		}
		if r.fenceAt < r.promoteAt {
			first++
		}
		fmt.Fprintf(&b, "| %s | %v | %.2f s | %.2f s | %.2f s |\n", r.name, r.leadEtcd, r.fenceAt.Seconds(), r.promoteAt.Seconds(), (r.promoteAt - r.fenceAt).Seconds())
	}
	fmt.Fprintf(&b, "fence before promotion in %d of %d runs\n", first, len(rows))
	t.Log(b.String())
	fmt.Print(b.String())
}

// partitionRun forms a namespaced cluster, isolates its primary and waits
// for the promotion, then orders the two events by the agents' logs.
func partitionRun(t *testing.T, r *fenceRun) {
	var props map[string]string
	if r.leadEtcd {
		// etcd's default election timeout, under which a stale leader
		// serves renewals longest (test/netns TestPrimaryPartitionedLeadingEtcd).
		props = map[string]string{"dcs.election.timeout": "1"}
	}
	c := testenv.NewNetCluster(t, testenv.NetOptions{Standbys: 2, Witnesses: 1, Props: props})
	c.StartAll(t)
	old, witness := c.Primary(), c.Witnesses()[0]
	if r.leadEtcd {
		c.PutEtcdLeaderOn(t, old)
	}
	cut := time.Now()
	c.Net.Isolate(t, old.NetHost)
	st := witness.WaitStatus(t, 90*time.Second, "a standby promoted", func(st testenv.Status, code int) error {
		if st.Primary == "" || st.Primary == old.Host || st.PrimaryPhase != "promoted" {
			return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
		return nil
	})
	np := c.ByAddr(st.Primary)
	if np == nil {
		t.Fatalf("new primary %s is no node of the cluster", st.Primary)
	}
	promoted, ok := np.LoggedAt("promoting the local database")
	if !ok {
		r.failed = "no promotion logged"
		t.Fatalf("%s is recorded primary but never logged its promotion", np.Name)
	}
	var fenced time.Time
	testenv.WaitFor(t, 10*time.Second, "the isolated primary's fence in its log", func() (bool, error) {
		if fenced, ok = old.LoggedAt("the isolated primary's database is stopped"); ok {
			return true, nil
		}
		return false, fmt.Errorf("%s logged no stopped database", old.Name)
	})
	r.fenceAt, r.promoteAt = fenced.Sub(cut), promoted.Sub(cut)
	if !fenced.Before(promoted) {
		r.failed = fmt.Sprintf("promotion first: stopped %.2f s, promoted %.2f s", r.fenceAt.Seconds(), r.promoteAt.Seconds())
		t.Errorf("two writable primaries: %s started its promotion at %s, %s after the cut, before the isolated %s stopped its database at %s (%s after)",
			np.Name, promoted.Format(time.RFC3339Nano), r.promoteAt, old.Name, fenced.Format(time.RFC3339Nano), r.fenceAt)
	}
}
