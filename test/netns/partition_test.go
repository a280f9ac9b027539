package netns

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// sampler asks GET /primary on every node's admin.port from the client
// host every 50 ms; each sample is the codes answered (0: no answer).
type sampler struct {
	c     *testenv.NetCluster
	stop  chan struct{}
	done  sync.WaitGroup
	mu    sync.Mutex
	items []sample
}

type sample struct {
	at    time.Time
	codes []int
}

func startSampler(t *testing.T, c *testenv.NetCluster) *sampler {
	s := &sampler{c: c, stop: make(chan struct{})}
	client := &http.Client{
		Transport: &http.Transport{DialContext: c.Net.Client().DialContext, DisableKeepAlives: true},
		Timeout:   250 * time.Millisecond,
	}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			at := time.Now()
			s.done.Add(1)
			go func() {
				defer s.done.Done()
				codes := make([]int, len(c.Nodes))
				var wg sync.WaitGroup
				for i, n := range c.Nodes {
					wg.Go(func() {
						url := "http://" + net.JoinHostPort(n.Addr.String(), strconv.Itoa(testenv.NetAdminPort)) + "/primary"
						if resp, err := client.Get(url); err == nil {
							codes[i] = resp.StatusCode
							resp.Body.Close()
						}
					})
				}
				wg.Wait()
				s.mu.Lock()
				s.items = append(s.items, sample{at: at, codes: codes})
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop ends sampling; safe to call twice.
func (s *sampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.done.Wait()
}

// check fails the test if any sample saw two 200s, or if /primary never
// answered 200 on old before the cut and on np at the end.
func (s *sampler) check(t *testing.T, old, np *testenv.NetNode, cut time.Time) {
	t.Helper()
	s.Stop()
	s.mu.Lock()
	items := slices.Clone(s.items)
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b sample) int { return a.at.Compare(b.at) })
	oi, ni := slices.Index(s.c.Nodes, old), slices.Index(s.c.Nodes, np)
	var sawOld, sawNew bool
	var none int
	var lastOld, firstNew time.Time
	for _, it := range items {
		var ok []string
		for i, code := range it.codes {
			if code == http.StatusOK {
				ok = append(ok, s.c.Nodes[i].Name)
			}
		}
		if len(ok) > 1 {
			t.Errorf("GET /primary answered 200 on %v at the same sample (%s after the cut): %v", ok, it.at.Sub(cut), it.codes)
		}
		if len(ok) == 0 {
			none++
		}
		if it.codes[oi] == http.StatusOK {
			sawOld, lastOld = true, it.at
		}
		if it.codes[ni] == http.StatusOK {
			if !sawNew {
				firstNew = it.at
			}
			sawNew = true
		}
	}
	if !sawOld || !sawNew {
		t.Errorf("GET /primary: 200 on the old primary %v, on the new %v; want both at some time", sawOld, sawNew)
	}
	t.Logf("GET /primary: %d samples, %d with no 200; last 200 from the old primary %s after the cut, first from the new %s after",
		len(items), none, lastOld.Sub(cut).Round(time.Millisecond), firstNew.Sub(cut).Round(time.Millisecond))
}

// partitionFailover isolates the primary's host and checks the failover
// with a client writing through the virtual IP and /primary sampled
// throughout. With leadEtcd the primary's etcd member is made the etcd
// leader just before the cut (the agent moves it away within 2 s), so the
// isolated side starts with a leader that keeps renewing leases until it
// notices it lost its quorum.
func partitionFailover(t *testing.T, ipv6, leadEtcd bool) {
	var props map[string]string
	if leadEtcd {
		// etcd's default election timeout: the stale leader serves
		// renewals for 1 to 2 s after the cut, long enough that counting
		// them would make the fence late.
		props = map[string]string{"dcs.election.timeout": "1"}
	}
	c := newClusterWith(t, 2, ipv6, props)
	old, witness := c.Primary(), c.Witnesses()[0]
	w := c.StartVIPWriter(t)
	w.WaitAcked(t, old.Host, 30*time.Second)
	s := startSampler(t, c)
	time.Sleep(500 * time.Millisecond)

	if leadEtcd {
		c.PutEtcdLeaderOn(t, old)
	}
	cut := time.Now()
	c.Net.Isolate(t, old.NetHost)
	var fenced, released time.Duration
	testenv.WaitFor(t, 30*time.Second, "the isolated primary stops its database", func() (bool, error) {
		if released == 0 && !c.HoldsVIP(t, old) {
			released = time.Since(cut)
		}
		if !old.DBRunning(t) {
			fenced = time.Since(cut)
			return true, nil
		}
		return false, fmt.Errorf("its database still runs")
	})
	for end := cut.Add(nodeTimeout + 2*time.Second); released == 0 && time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
		if !c.HoldsVIP(t, old) {
			released = time.Since(cut)
		}
	}
	t.Logf("isolated primary: database stopped %s and virtual IP released %s after the cut (0: not released; node.timeout %s)",
		fenced.Round(time.Millisecond), released.Round(time.Millisecond), nodeTimeout)
	if fenced > nodeTimeout {
		t.Errorf("the isolated primary stopped its database %s after the cut: later than node.timeout (%s)", fenced, nodeTimeout)
	}
	if released == 0 || released > nodeTimeout {
		t.Errorf("the isolated primary still held the virtual IP %s after the cut (released after %s; want within node.timeout %s)",
			time.Since(cut).Round(time.Millisecond), released, nodeTimeout)
	}

	st := witness.WaitStatus(t, 60*time.Second, "a standby promoted, holding the virtual IP", func(st testenv.Status, code int) error {
		if st.Primary == "" || st.Primary == old.Host || st.PrimaryPhase != "promoted" {
			return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
		n := st.Nodes[st.Primary]
		if n.Type != "Primary" || n.DB != "UP" || !n.VIPActive {
			return fmt.Errorf("new primary %s reported as %+v", st.Primary, n)
		}
		for addr, o := range st.Nodes {
			if addr != st.Primary && o.VIPActive {
				return fmt.Errorf("%s also shows vip_active: %+v", addr, st.Nodes)
			}
		}
		return nil
	})
	np := c.ByAddr(st.Primary)
	if np == nil || np.PG == nil {
		t.Fatalf("new primary %s is no database node of the cluster", st.Primary)
	}
	t.Logf("%s promoted and reported with the virtual IP %s after the cut (epoch %d)", np.Name, time.Since(cut).Round(time.Millisecond), st.Epoch)
	if h := c.VIPHolders(t); !slices.Contains(h, np) {
		t.Errorf("the new primary %s does not carry the virtual IP; holders %v", np.Name, names(h))
	}

	w.WaitAcked(t, np.Host, 30*time.Second)
	resumed := time.Since(cut)
	w.Stop()
	gap, late := testenv.History(w.Acked(), old.Host, np.Host)
	t.Logf("write unavailability through the virtual IP %s: %s (writes resumed on %s by %s after the cut)",
		c.VIP, gap.Round(time.Millisecond), np.Name, resumed.Round(time.Millisecond))
	if len(late) > 0 {
		t.Errorf("%d writes acknowledged by the old primary %s after the new primary's first: %v", len(late), old.Host, late)
	}
	for _, a := range w.Acked() {
		if a.Server != old.Host && a.Server != np.Host {
			t.Errorf("write acknowledged by %s, neither the old nor the new primary: %+v", a.Server, a)
			break
		}
	}
	s.check(t, old, np, cut)

	// Healed, the old primary stays stopped and the address stays put.
	c.Net.Heal(t)
	for end := time.Now().Add(2 * nodeTimeout); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if old.DBRunning(t) {
			t.Fatal("the old primary's database runs again after the heal")
		}
		if h := c.VIPHolders(t); len(h) != 1 || h[0] != np {
			t.Fatalf("after the heal the virtual IP is held by %v", names(h))
		}
	}
}

// TestPrimaryPartitioned: the primary's host cut off from every other
// host, the client included.
func TestPrimaryPartitioned(t *testing.T) {
	partitionFailover(t, false, false)
}

// TestPrimaryPartitionedLeadingEtcd: the primary's host cut off while its
// etcd member leads. That leader serves lease renewals until CheckQuorum
// makes it step down, one to two election timeouts later; the agent must
// not count those renewals, or it fences itself after node.timeout, late.
func TestPrimaryPartitionedLeadingEtcd(t *testing.T) {
	partitionFailover(t, false, true)
}

// TestPrimaryPartitionedIPv6: the same on a cluster that uses IPv6 only.
func TestPrimaryPartitionedIPv6(t *testing.T) {
	partitionFailover(t, true, false)
}
