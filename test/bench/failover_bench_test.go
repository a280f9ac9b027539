package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/testenv"
)

// profile is a set of timing properties every node runs with. They
// override the harness's faster test settings.
type profile struct {
	name        string
	nodeTimeout time.Duration
	props       map[string]string
}

// profiles are the timing profiles, each run with asynchronous
// replication and again with synchronous.mode=on (name-sync).
var profiles = withSync([]profile{
	{name: "default", nodeTimeout: 5 * time.Second, props: map[string]string{
		"local.period": "1", "local.timeout": "2", "local.timeout.final": "2",
		"remote.timeout": "2", "node.timeout": "5",
	}},
	// A faster etcd election (0.5 s) and a 2 s lease: for a quiet LAN.
	{name: "fast", nodeTimeout: 1 * time.Second, props: map[string]string{
		"local.period": "0.5", "local.timeout": "1", "local.timeout.final": "1",
		"remote.timeout": "1", "node.timeout": "1", "dcs.election.timeout": "0.5",
	}},
})

// withSync lists each profile, then the same with synchronous.mode=on.
func withSync(ps []profile) []profile {
	var out []profile
	for _, p := range ps {
		q := p
		q.name, q.props = p.name+"-sync", maps.Clone(p.props)
		q.props["synchronous.mode"] = "on"
		out = append(out, p, q)
	}
	return out
}

func (p profile) syncMode() bool { return p.props["synchronous.mode"] == "on" }

// scenario is a fault injected on the primary.
type scenario struct {
	name     string
	failover bool              // a failover is expected
	props    map[string]string // on top of the profile's
}

var scenarios = []scenario{
	{"postmaster-kill", true, nil}, // kill -9 of the primary's postmaster
	// The same with primary.restart.timeout=10: restarted locally, no failover.
	{"postmaster-kill-restart", false, map[string]string{"primary.restart.timeout": "10"}},
	{"node-crash", true, nil}, // the primary's agent and postmaster killed
	// The same while every agent's notification script hangs: the gap
	// must not grow (notifications are queued, off the failover's path).
	{"node-crash-hanging-notify", true, nil},
	{"node-freeze", true, nil},   // SIGSTOP of the agent and every postgres process
	{"agent-kill", false, nil},   // the primary's agent killed alone
	{"short-freeze", false, nil}, // SIGSTOP for half of node.timeout
	// pgfm promote -switchover: a planned swap, no write may be lost.
	{"switchover", true, nil},
	// postmaster-kill with auto.rewind: the time until the old primary
	// streams again as a standby is the rebuild time.
	{"postmaster-kill-rewind", true, map[string]string{"auto.rewind": "true", "auto.basebackup": "true"}},
	// The primary's host cut off from every other node while the client,
	// writing through the virtual IP, still reaches it (network
	// namespaces; skipped without them). Asynchronous replication loses
	// what the old primary acknowledged until it fenced itself.
	{"primary-partition", true, nil},
}

const (
	failoverWait   = 60 * time.Second // fault → first write on another server
	statusWait     = 15 * time.Second // that write → the status reports the new primary
	thawWrites     = 2 * time.Second  // writes after a frozen primary is thawed
	baseline       = time.Second      // writes before the fault
	rejoinWait     = 90 * time.Second // fault → a rebuilt old primary streaming
	sampleInterval = 200 * time.Millisecond
)

// result is one run.
type result struct {
	run          int
	gap          time.Duration // longest gap between acknowledged writes
	failover     bool          // epoch > 1
	newPrimary   string        // node name, when the writes moved
	resumedAfter time.Duration // fault → first acknowledged write on the new primary
	lost         int           // acknowledged, missing on the final primary
	lostKnown    bool
	split        int // acknowledged by the old primary after the new one's first
	// rejoin: the fault → the old primary streaming from the new one
	// (switchover: as the promote command reports it).
	rejoin    time.Duration
	noPrimary bool // at the end, the primary the cluster names is not writable
	rssMiB    float64
	cpuPct    float64
	// commitP50 and commitP99 are the client's commit latency before the
	// fault: the price of synchronous replication.
	commitP50, commitP99 time.Duration
	notes                []string // failures of the system under test
	harness              string   // failures of the harness (the run is incomplete)
	skip                 string
}

func runs() int {
	if v := os.Getenv("BENCH_RUNS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return 5
}

// BenchmarkFailover injects every scenario BENCH_RUNS times (default 5)
// per profile, each on a fresh cluster, and prints the
// write-unavailability table. Timings are reported, not asserted.
func BenchmarkFailover(b *testing.B) {
	n := runs()
	start := time.Now()
	var tables []string
	for _, p := range profiles {
		var rows []row
		b.Run(p.name, func(b *testing.B) {
			for _, s := range scenarios {
				b.Run(s.name, func(b *testing.B) {
					var res []result
					for i := 1; i <= n; i++ {
						r := runOnce(b, p, s, i)
						if r.skip != "" {
							b.Skip(r.skip)
						}
						res = append(res, r)
						fmt.Print(describe(p, s, r))
						if r.harness != "" {
							b.Errorf("%s/%s run %d: harness failure:\n%s", p.name, s.name, i, r.harness)
						}
					}
					rw := summarize(s, res)
					rows = append(rows, rw)
					b.ReportMetric(0, "ns/op")
					if rw.gaps > 0 {
						b.ReportMetric(rw.median.Seconds(), "unavail-median-s")
						b.ReportMetric(rw.max.Seconds(), "unavail-max-s")
					}
					b.ReportMetric(float64(rw.failovers), "failovers")
					b.ReportMetric(float64(rw.lost), "lost-writes")
					b.ReportMetric(float64(rw.split), "split-brain-writes")
					b.ReportMetric(float64(rw.noPrimary), "no-primary-at-end")
				})
			}
		})
		if len(rows) > 0 {
			t := table(p, n, rows)
			fmt.Print(t)
			tables = append(tables, t)
		}
	}
	if len(tables) > 0 {
		fmt.Printf("\n=== pgfm failover benchmark, %d run(s) per scenario, %s, %s ===\n",
			n, time.Now().Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second))
		for _, t := range tables {
			fmt.Print(t)
		}
	}
}

// runOnce builds a fresh cluster, injects the fault and measures.
func runOnce(b *testing.B, p profile, s scenario, i int) (res result) {
	res.run = i
	t := newRunT(b)
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(abortRun); !ok {
				panic(v)
			}
		}
		t.finish()
		res.harness = t.report()
		res.skip = t.skip
	}()
	measure(t, p, s, &res)
	return res
}

func measure(t *runT, p profile, s scenario, res *result) {
	props := map[string]string{}
	for k, v := range p.props {
		props[k] = v
	}
	for k, v := range s.props {
		props[k] = v
	}
	if s.name == "primary-partition" {
		measurePartition(t, p, props, res)
		return
	}
	if s.name == "node-crash-hanging-notify" {
		props["script.notification"], props["script.timeout"] = hangingScript(t), "90"
	}
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 2, Witnesses: 1, Props: props})
	c.StartAll(t)
	old, witness := c.Primary(), c.Nodes[3]
	waitHealthy(t, witness, old)
	if p.syncMode() {
		waitSynchronous(t, func() (clusterStatus, error) { return status(t, witness) })
	}

	var hosts []string
	for _, n := range c.PG.Nodes {
		hosts = append(hosts, n.Host)
	}
	w := testenv.StartWriter(t, c.PG.Primary(), hosts, c.PG.Port)
	w.WaitAcked(t, old.Host, 30*time.Second)

	var pids []int
	for _, n := range c.Nodes[1:3] { // the standbys' agents
		pid, err := agentPID(n)
		if err != nil {
			t.Fatalf("%v", err)
		}
		pids = append(pids, pid)
	}
	smp := startSampler(pids, sampleInterval)
	defer smp.stop()

	time.Sleep(baseline)
	note := func(format string, args ...any) { res.notes = append(res.notes, fmt.Sprintf(format, args...)) }
	freeze := func(sig syscall.Signal) {
		old.Signal(sig)
		old.PG.Signal(t, sig)
	}
	frozen := false
	thaw := func() {
		if frozen {
			frozen = false
			freeze(syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw) // a run that ends early leaves nothing stopped
	fault := time.Now()
	res.commitP50, res.commitP99 = commitLatency(w.Acked(), fault)
	switch s.name {
	case "postmaster-kill", "postmaster-kill-restart", "postmaster-kill-rewind":
		old.PG.Kill(t)
	case "node-crash", "node-crash-hanging-notify":
		old.Kill(t)
		old.PG.Kill(t)
	case "node-freeze", "short-freeze":
		frozen = true
		freeze(syscall.SIGSTOP)
		if s.name == "short-freeze" {
			time.Sleep(p.nodeTimeout / 2)
			thaw()
		}
	case "agent-kill":
		old.Kill(t)
	case "switchover":
		out, errOut, code := old.CLI(t, "promote", old.Cluster, "-switchover", "-json")
		var sw httpapi.PromoteResult
		if err := json.Unmarshal([]byte(out), &sw); err != nil || code != 0 || !sw.Done {
			note("promote -switchover: exit %d, %v, %+v; stderr %s", code, err, sw, strings.TrimSpace(errOut))
		}
		for _, step := range sw.Steps {
			if step.Name == "old primary streaming" {
				res.rejoin = time.Duration(step.After)
			}
		}
	default:
		t.Fatalf("unknown scenario %s", s.name)
	}

	var st clusterStatus
	epochSeen := uint64(0)
	if s.failover {
		first, ok := waitWriteElsewhere(w, old.Host, fault, failoverWait)
		if !ok {
			note("no write acknowledged by another server within %s of the fault", failoverWait)
		} else {
			res.resumedAfter = first.At.Sub(fault)
			st = waitPromoted(func() (clusterStatus, error) { return status(t, witness) }, old.Host, first.Server, note)
			epochSeen = max(epochSeen, st.Epoch)
			if st.Primary != "" && st.Primary != first.Server {
				note("the first write after the fault went to %s, but the status names %s", first.Server, st.Primary)
			}
		}
		if s.name == "node-freeze" {
			// Thawed, the old primary must not take any write.
			thaw()
			time.Sleep(thawWrites)
		}
		if s.name == "postmaster-kill-rewind" && st.Primary != "" {
			if at, ok := waitStreamingFrom(old.PG, st.Primary, rejoinWait); ok {
				res.rejoin = at.Sub(fault)
			} else {
				note("the old primary did not stream from %s within %s of the fault", st.Primary, rejoinWait)
			}
		}
	} else {
		// Observe for 3 × node.timeout after the fault.
		end := fault.Add(3 * p.nodeTimeout)
		for time.Now().Before(end) {
			if cur, err := status(t, witness); err == nil {
				epochSeen = max(epochSeen, cur.Epoch)
				if cur.Epoch > 1 {
					note("failover during the observation window: primary %s (%s), epoch %d, %s after the fault; messages %v",
						cur.Primary, cur.PrimaryPhase, cur.Epoch, time.Since(fault).Round(10*time.Millisecond), cur.Messages)
				}
			}
			time.Sleep(min(500*time.Millisecond, time.Until(end)))
		}
	}
	w.Stop()
	stopped := time.Now()
	res.rssMiB, res.cpuPct = smp.stop()

	// The final state, as the witness reports it.
	final, err := status(t, witness)
	if err != nil {
		note("final cluster-status-json: %v", err)
	} else {
		st = final
		epochSeen = max(epochSeen, final.Epoch)
	}
	res.failover = epochSeen > 1
	if s.failover && !res.failover {
		note("no failover (epoch %d); messages %v", epochSeen, st.Messages)
	}

	acked := w.Acked()
	finalPrimary := old
	if res.failover && st.Primary != "" {
		finalPrimary = nil
		for _, n := range c.Nodes {
			if n.Host == st.Primary {
				finalPrimary = n
			}
		}
		if finalPrimary == nil || finalPrimary.PG == nil {
			note("the status names primary %q, which is no database node", st.Primary)
			finalPrimary = nil
		} else {
			res.newPrimary = finalPrimary.Name
		}
	}
	newHost := ""
	if finalPrimary != nil && finalPrimary != old {
		newHost = finalPrimary.Host
	}
	gap, late := testenv.History(acked, old.Host, newHost)
	if len(acked) > 0 {
		// Writes that never resumed: the gap runs until the writer stopped.
		gap = max(gap, stopped.Sub(acked[len(acked)-1].At))
	}
	res.gap = gap
	res.split = len(late)
	if len(late) > 0 {
		note("%d writes acknowledged by the old primary %s after the new primary %s took its first: ids %v",
			len(late), old.Host, newHost, writeIDs(late, 20))
	}
	servers := map[string]bool{}
	for _, a := range acked {
		if a.At.After(fault) {
			servers[a.Server] = true
		}
	}
	delete(servers, old.Host)
	delete(servers, newHost)
	if len(servers) > 0 {
		note("writes after the fault acknowledged by other servers too: %v", keys(servers))
	}

	// The cluster must end with a writable primary, not merely have had one.
	if finalPrimary == nil {
		res.noPrimary = true
	} else if err := writable(finalPrimary.PG); err != nil {
		res.noPrimary = true
		note("the cluster ends without a writable primary: %s (named by epoch %d, phase %s): %v; messages %v",
			finalPrimary.Name, st.Epoch, st.PrimaryPhase, err, st.Messages)
	}
	if finalPrimary != nil {
		lost, err := testenv.LostWrites(finalPrimary.PG, acked)
		if err != nil {
			note("counting lost writes on %s: %v", finalPrimary.Name, err)
		} else {
			res.lost, res.lostKnown = len(lost), true
			if len(lost) > 0 {
				note("%d acknowledged writes missing on the final primary %s: ids %v", len(lost), finalPrimary.Name, writeIDs(lost, 20))
			}
		}
	}
	if len(res.notes) > 0 || os.Getenv("BENCH_KEEP_LOGS") == "1" {
		if path, err := dumpLogs(c, p, s, res.run); err == nil {
			note("agent and server logs saved in %s", path)
		}
	}
}

// clusterStatus is the part of cluster-status-json the benchmark reads.
type clusterStatus struct {
	Nodes map[string]struct {
		Type  string `json:"type"`
		Agent string `json:"agent"`
		DB    string `json:"db"`
	} `json:"nodes"`
	Messages     []string `json:"messages"`
	Epoch        uint64   `json:"epoch"`
	Primary      string   `json:"primary"`
	PrimaryPhase string   `json:"primaryPhase"`
	// Synchronous replication: the recorded set.
	SynchronousStandbys []string `json:"synchronousStandbys"`
	SynchronousQuorum   int      `json:"synchronousQuorum"`
}

// waitPromoted waits (statusWait at most) until the status names a
// promoted primary other than old, the server the writer saw take writes
// first; it notes when it does not.
func waitPromoted(status func() (clusterStatus, error), old, first string, note func(string, ...any)) clusterStatus {
	deadline := time.Now().Add(statusWait)
	for {
		st, err := status()
		if err == nil && st.Primary != old && st.PrimaryPhase == "promoted" {
			return st
		}
		if time.Now().After(deadline) {
			note("writes moved to %s, but cluster-status-json reports primary %s (%s), epoch %d, err %v",
				first, st.Primary, st.PrimaryPhase, st.Epoch, err)
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitSynchronous waits until both standbys are synchronous (ANY 1 of
// them), so that a synchronous run starts from the steady state.
func waitSynchronous(t *runT, status func() (clusterStatus, error)) {
	testenv.WaitFor(t, 60*time.Second, "both standbys synchronous", func() (bool, error) {
		st, err := status()
		if err != nil {
			return false, err
		}
		if st.SynchronousQuorum != 1 || len(st.SynchronousStandbys) != 2 {
			return false, fmt.Errorf("synchronous set ANY %d %v", st.SynchronousQuorum, st.SynchronousStandbys)
		}
		return true, nil
	})
}

// commitLatency is the median and 99th percentile of the commit latency
// of the writes acknowledged before the fault.
func commitLatency(acked []testenv.Write, fault time.Time) (p50, p99 time.Duration) {
	var ls []time.Duration
	for _, a := range acked {
		if a.At.Before(fault) {
			ls = append(ls, a.Latency)
		}
	}
	if len(ls) == 0 {
		return 0, 0
	}
	slices.Sort(ls)
	return ls[len(ls)/2], ls[min(len(ls)-1, len(ls)*99/100)]
}

func status(t *runT, n *testenv.Node) (clusterStatus, error) {
	out, errOut, code := n.CLI(t, "cluster-status-json", n.Cluster)
	var st clusterStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("cluster-status-json on %s: exit %d, not JSON: %v; stderr: %s", n.Name, code, err, strings.TrimSpace(errOut))
	}
	return st, nil
}

// waitHealthy waits until the witness sees every agent up, every database
// up, the created primary as the epoch-1 primary and two standbys.
func waitHealthy(t *runT, witness, primary *testenv.Node) {
	testenv.WaitFor(t, 60*time.Second, "a healthy cluster", func() (bool, error) {
		st, err := status(t, witness)
		if err != nil {
			return false, err
		}
		if len(st.Nodes) != 4 {
			return false, fmt.Errorf("%d nodes: %+v", len(st.Nodes), st)
		}
		standbys := 0
		for host, n := range st.Nodes {
			if n.Agent != "UP" {
				return false, fmt.Errorf("agent of %s is %s", host, n.Agent)
			}
			switch n.Type {
			case "Witness":
			case "Standby":
				standbys++
				if n.DB != "UP" {
					return false, fmt.Errorf("database of %s is %s", host, n.DB)
				}
			case "Primary":
				if host != primary.Host || n.DB != "UP" {
					return false, fmt.Errorf("primary %s, database %s", host, n.DB)
				}
			default:
				return false, fmt.Errorf("%s is %s", host, n.Type)
			}
		}
		if standbys != 2 || st.Epoch != 1 || st.Primary != primary.Host {
			return false, fmt.Errorf("%d standbys, primary record %s epoch %d", standbys, st.Primary, st.Epoch)
		}
		return true, nil
	})
}

// waitWriteElsewhere waits for the first write after since acknowledged by
// a server other than old.
func waitWriteElsewhere(w *testenv.Writer, old string, since time.Time, timeout time.Duration) (testenv.Write, bool) {
	deadline := time.Now().Add(timeout)
	seen := 0
	for {
		acked := w.Acked()
		for _, a := range acked[seen:] {
			if a.At.After(since) && a.Server != old {
				return a, true
			}
		}
		seen = len(acked)
		if time.Now().After(deadline) {
			return testenv.Write{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStreamingFrom waits until pg is in recovery and streams from host;
// it returns when it saw that.
func waitStreamingFrom(pg *testenv.PGNode, host string, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var sender string
		if err := pg.TryQueryRow("SELECT coalesce((SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming'), '')", &sender); err == nil && sender == host {
			return time.Now(), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, false
}

// writable says whether pg is up and out of recovery.
func writable(pg *testenv.PGNode) error {
	var rec bool
	if err := pg.TryQueryRow("SELECT pg_is_in_recovery()", &rec); err != nil {
		return err
	}
	if rec {
		return fmt.Errorf("in recovery")
	}
	return nil
}

func writeIDs(ws []testenv.Write, limit int) string {
	var ids []string
	for i, a := range ws {
		if i == limit {
			ids = append(ids, fmt.Sprintf("… (%d more)", len(ws)-limit))
			break
		}
		ids = append(ids, fmt.Sprintf("%d@%s", a.ID, a.Server))
	}
	return strings.Join(ids, " ")
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// dumpLogs saves every agent's output and server log of a run that went
// wrong (of every run with BENCH_KEEP_LOGS=1), under BENCH_LOG_DIR (default
// /tmp/pgfm-bench-logs).
func dumpLogs(c *testenv.AgentCluster, p profile, s scenario, run int) (string, error) {
	base := os.Getenv("BENCH_LOG_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), "pgfm-bench-logs")
	}
	dir := filepath.Join(base, fmt.Sprintf("%s-%s-%s-run%d", time.Now().Format("20060102-150405"), p.name, s.name, run))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, n := range c.Nodes {
		_ = os.WriteFile(filepath.Join(dir, n.Name+"-"+n.Host+".agent.log"), []byte(n.Output()), 0o644)
		if n.PG != nil {
			if b, err := os.ReadFile(n.PG.LogFile); err == nil {
				_ = os.WriteFile(filepath.Join(dir, n.Name+"-"+n.Host+".postgres.log"), b, 0o644)
			}
		}
	}
	return dir, nil
}

// describe is one run's line (and notes).
func describe(p profile, s scenario, r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %-15s run %d: ", p.name, s.name, r.run)
	if r.harness != "" {
		fmt.Fprintf(&b, "HARNESS FAILURE, not counted\n%s", indent(clip(r.harness, 12, 400)))
		return b.String()
	}
	lost := "?"
	if r.lostKnown {
		lost = strconv.Itoa(r.lost)
	}
	fmt.Fprintf(&b, "unavailable %.2fs, failover %v", r.gap.Seconds(), r.failover)
	if r.newPrimary != "" {
		fmt.Fprintf(&b, " (to %s, writes resumed %.2fs after the fault)", r.newPrimary, r.resumedAfter.Seconds())
	}
	if r.noPrimary {
		b.WriteString(", NO WRITABLE PRIMARY AT THE END")
	}
	if r.rejoin > 0 {
		fmt.Fprintf(&b, ", old primary streaming %.2fs after the fault", r.rejoin.Seconds())
	}
	fmt.Fprintf(&b, ", lost %s, split-brain %d, commit p50 %.1f ms p99 %.1f ms, agent RSS %.1f MiB, CPU %.1f%%\n", lost, r.split,
		ms(r.commitP50), ms(r.commitP99), r.rssMiB, r.cpuPct)
	for _, n := range r.notes {
		fmt.Fprintf(&b, "    NOTE: %s\n", n)
	}
	return b.String()
}

// clip keeps the first lines of s, each cut to width bytes: a failed
// run's report carries whole agent outputs (go test -v shows them all).
func clip(s string, lines, width int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = append(ls[:lines], fmt.Sprintf("… %d more lines", len(ls)-lines))
	}
	for i, l := range ls {
		if len(l) > width {
			ls[i] = l[:width] + " …"
		}
	}
	return strings.Join(ls, "\n")
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "    " + strings.Join(lines, "\n    ") + "\n"
}

// row is a scenario's summary in a profile's table.
type row struct {
	scenario         string
	runs, failovers  int
	gaps             int // runs measured (harness failures excluded)
	median, min, max time.Duration
	lost, split      int
	lostUnknown      int
	noPrimary        int // runs that ended without a writable primary
	rssMiB, cpuPct   float64
	expectFailover   bool
	rejoin           time.Duration // median fault → old primary streaming; 0: none
	// commitP50 and commitP99 are the medians over the runs of each run's
	// commit latency percentiles.
	commitP50, commitP99 time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	m := len(ds) / 2
	if len(ds)%2 == 0 {
		return (ds[m-1] + ds[m]) / 2
	}
	return ds[m]
}

func summarize(s scenario, res []result) row {
	rw := row{scenario: s.name, expectFailover: s.failover}
	var gaps, rejoins, p50s, p99s []time.Duration
	var cpu float64
	for _, r := range res {
		if r.harness != "" {
			continue
		}
		rw.runs++
		if r.failover {
			rw.failovers++
		}
		gaps = append(gaps, r.gap)
		rw.lost += r.lost
		if !r.lostKnown {
			rw.lostUnknown++
		}
		rw.split += r.split
		if r.noPrimary {
			rw.noPrimary++
		}
		rw.rssMiB = max(rw.rssMiB, r.rssMiB)
		cpu += r.cpuPct
		if r.rejoin > 0 {
			rejoins = append(rejoins, r.rejoin)
		}
		if r.commitP50 > 0 {
			p50s, p99s = append(p50s, r.commitP50), append(p99s, r.commitP99)
		}
	}
	rw.commitP50, rw.commitP99 = median(p50s), median(p99s)
	if len(rejoins) > 0 {
		slices.Sort(rejoins)
		rw.rejoin = rejoins[len(rejoins)/2]
	}
	rw.gaps = len(gaps)
	if len(gaps) > 0 {
		slices.Sort(gaps)
		rw.min, rw.max = gaps[0], gaps[len(gaps)-1]
		m := len(gaps) / 2
		rw.median = gaps[m]
		if len(gaps)%2 == 0 {
			rw.median = (gaps[m-1] + gaps[m]) / 2
		}
		rw.cpuPct = cpu / float64(len(gaps))
	}
	return rw
}

func table(p profile, n int, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nprofile %s (", p.name)
	for i, k := range []string{"local.period", "local.timeout", "local.timeout.final", "remote.timeout", "node.timeout"} {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%s", k, p.props[k])
	}
	fmt.Fprintf(&b, "), %d run(s) per scenario\n", n)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\truns\tfailovers\tunavail median s\tmin s\tmax s\tlost writes\tsplit-brain writes\tcommit p50 ms\tcommit p99 ms\tagent RSS max MiB\tagent CPU %\tno primary at end\told primary streaming s")
	for _, r := range rows {
		fo := fmt.Sprintf("%d", r.failovers)
		if !r.expectFailover {
			fo += " (0 wanted)"
		}
		lost := strconv.Itoa(r.lost)
		if r.lostUnknown > 0 {
			lost += fmt.Sprintf(" (%d unknown)", r.lostUnknown)
		}
		if r.gaps == 0 {
			fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t-\t%s\t%d\t-\t-\t-\t-\t%d\t-\n", r.scenario, r.runs, fo, lost, r.split, r.noPrimary)
			continue
		}
		rejoin := "-"
		if r.rejoin > 0 {
			rejoin = fmt.Sprintf("%.2f", r.rejoin.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%s\n", r.scenario, r.runs, fo,
			r.median.Seconds(), r.min.Seconds(), r.max.Seconds(), lost, r.split, ms(r.commitP50), ms(r.commitP99),
			r.rssMiB, r.cpuPct, r.noPrimary, rejoin)
	}
	tw.Flush()
	return b.String()
}

// hangingScript writes a notification script that hangs for a minute, or
// until the run ends.
func hangingScript(t testing.TB) string {
	dir := testenv.TempDir(t)
	path, release := filepath.Join(dir, "hang.sh"), filepath.Join(dir, "release")
	body := "#!/bin/sh\nn=0\nwhile [ ! -e " + release + " ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done\n"
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	return path
}
