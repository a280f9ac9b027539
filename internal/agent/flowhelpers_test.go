package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/decide"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/postgres"
)

// The flow tests run several agents on one dcs.Memory, each with a fake
// PostgreSQL, and drive them through the agent's own methods (publish,
// reconcile, decideOnce, ...) step by step. Time that matters for safety
// (the leases) runs on a clock the test moves.

var _ store = (*dcs.Memory)(nil)

const (
	flowNodeTimeout = 3 * time.Second
	flowClusterName = "flow"
)

// flowClock is the clock of the cluster's leases; it moves only when told.
type flowClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *flowClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *flowClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakePG is one node's PostgreSQL: what a probe of it observes, and what
// the executor did to it (calls). It is stateful: a promotion makes it
// writable, a stop takes it down, a follow re-points it.
type fakePG struct {
	host string
	hist *flowHistory

	mu      sync.Mutex
	obs     cluster.DBObservation
	signal  bool // standby.signal is in the data directory
	running bool // a postmaster runs (postmaster.pid)
	started time.Time
	calls   []string
	// control is pg_controldata's view: a fast stop of a primary leaves
	// "shut down" at its last position, any other stop "in production".
	control postgres.ControlData
	// promoteErr makes Promote fail, the database left in recovery.
	promoteErr error
	// syncNames is synchronous_standby_names as last set.
	syncNames string
}

// flowHistory is every database operation of the cluster, in order.
type flowHistory struct {
	mu  sync.Mutex
	ops []string
}

func (h *flowHistory) add(s string) {
	h.mu.Lock()
	h.ops = append(h.ops, s)
	h.mu.Unlock()
}

func (h *flowHistory) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

func (f *fakePG) record(call string) {
	f.calls = append(f.calls, call)
	f.hist.add(f.host + ": " + call)
}

func (f *fakePG) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakePG) observation() cluster.DBObservation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.obs
}

// set changes what the database is, as something outside pgfm would.
func (f *fakePG) set(fn func(o *cluster.DBObservation)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.obs)
	f.running = f.obs.Up
}

// crash takes the database down without pgfm.
func (f *fakePG) crash() {
	f.set(func(o *cluster.DBObservation) { o.Up, o.Error = false, "connection refused" })
}

func (f *fakePG) up() {
	f.obs.Up, f.obs.Error = true, ""
	f.running, f.started = true, time.Now()
}

func (f *fakePG) Start(context.Context, time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start")
	f.up()
	f.obs.InRecovery = f.signal
	return nil
}

func (f *fakePG) Stop(_ context.Context, mode string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("stop " + mode)
	f.control = postgres.ControlData{State: "in production", Checkpoint: f.obs.LSN()}
	if mode == "fast" && f.obs.Up && !f.obs.InRecovery {
		f.control.State = "shut down"
	}
	f.obs.Up, f.obs.Error, f.running = false, "connection refused", false
	return nil
}

func (f *fakePG) ControlData(context.Context) (postgres.ControlData, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("controldata")
	return f.control, nil
}

func (f *fakePG) Checkpoint(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("checkpoint")
	return nil
}

func (f *fakePG) Restart(context.Context, time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("restart")
	f.up()
	return nil
}

func (f *fakePG) Promote(context.Context, string, time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("promote")
	if f.promoteErr != nil {
		return f.promoteErr
	}
	o := &f.obs
	o.InRecovery, o.Timeline, o.CurrentLSN = false, o.Timeline+1, o.LSN()
	o.ReceiveLSN, o.ReplayLSN, o.WalReceiver, o.SenderHost = 0, 0, "", ""
	f.signal = false
	return nil
}

func (f *fakePG) Follow(_ context.Context, _, host string, _ int, _, _ string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("follow " + host)
	f.obs.SenderHost, f.obs.WalReceiver = host, "streaming"
	f.signal = true // as postgres.Server.Follow does
	return true, nil
}

func (f *fakePG) RemoveStandbySignal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("no standby.signal")
	f.signal = false
	return nil
}

func (f *fakePG) EnsureStandbySignal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("standby.signal")
	f.signal = true
	return nil
}

func (f *fakePG) PostmasterStarted() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started, f.running
}

// flowLog keeps every log record of the agents (flowLogHandler), so a
// test can read the notifications they posted and show the logs when it
// fails.
type flowLog struct {
	mu    sync.Mutex
	lines []string
	notes []string // notification subjects, "node: subject"
}

type flowLogHandler struct {
	r     *flowLog
	attrs []slog.Attr
}

func (h flowLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h flowLogHandler) WithGroup(string) slog.Handler            { return h }
func (h flowLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flowLogHandler{r: h.r, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h flowLogHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	var node, subject string
	each := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		switch a.Key {
		case "node":
			node = a.Value.String()
		case "subject":
			subject = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		each(a)
	}
	rec.Attrs(each)
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.r.lines = append(h.r.lines, b.String())
	if rec.Message == "notification" {
		h.r.notes = append(h.r.notes, node+": "+strings.TrimSuffix(subject, " on cluster "+flowClusterName))
	}
	return nil
}

func (r *flowLog) notifications() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notes)
}

// formed is a cluster whose primary flowP1 is the coordinator and whose
// standbys flowS2, flowS3 … hold lsns, every agent published and
// reconciled once (the standbys stream from the primary).
func formed(t *testing.T, lsns ...cluster.LSN) (*flowCluster, []*flowAgent) {
	t.Helper()
	addrs := []string{flowS2, flowS3}[:len(lsns)]
	cl := newCluster(t, flowP1, addrs, lsns)
	agents := []*flowAgent{cl.start(flowP1)}
	for _, a := range addrs {
		agents = append(agents, cl.start(a))
	}
	cl.coordinator(flowP1)
	cl.publishAll(agents...)
	for _, a := range agents {
		a.reconcile(cl.ctx)
	}
	return cl, agents
}

// logged: some line of the agents' log contains s.
func (r *flowLog) logged(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.lines, func(l string) bool { return strings.Contains(l, s) })
}

// flowCluster is a cluster of agents sharing one dcs.Memory.
type flowCluster struct {
	t     *testing.T
	ctx   context.Context
	clock *flowClock
	store *dcs.Memory
	hist  *flowHistory
	log   *flowLog

	mu     sync.Mutex
	dbs    map[string]*fakePG
	cutOff map[string]bool // nodes no other node can reach
	agents map[string]*flowAgent
}

// flowAgent is one agent with its goroutines (the primary record watch,
// the campaign, the notification queue), which end with stop.
type flowAgent struct {
	*Agent
	pg     *fakePG
	ctx    context.Context // ends with stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newCluster makes a cluster whose primary (epoch 1) is primary and whose
// standbys stream from it, each standby having received lsns[i].
func newCluster(t *testing.T, primary string, standbys []string, lsns []cluster.LSN) *flowCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	clock := &flowClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	cl := &flowCluster{
		t: t, ctx: ctx, clock: clock, store: dcs.NewMemory(flowClusterName, clock.Now),
		hist: &flowHistory{}, log: &flowLog{},
		dbs: map[string]*fakePG{}, cutOff: map[string]bool{}, agents: map[string]*flowAgent{},
	}
	t.Cleanup(func() {
		for _, a := range cl.agents {
			a.stop()
		}
		cancel()
		if t.Failed() {
			cl.log.mu.Lock()
			t.Logf("agents' log:\n%s\ndatabase operations: %q", strings.Join(cl.log.lines, "\n"), cl.hist.get())
			cl.log.mu.Unlock()
		}
	})
	const primaryLSN = cluster.LSN(0x5000000)
	cl.dbs[primary] = &fakePG{host: primary, hist: cl.hist,
		obs: cluster.DBObservation{Up: true, Timeline: 1, CurrentLSN: primaryLSN}, running: true}
	for i, s := range standbys {
		cl.dbs[s] = &fakePG{host: s, hist: cl.hist, signal: true, running: true,
			obs: cluster.DBObservation{Up: true, InRecovery: true, Timeline: 1, ReceiveLSN: lsns[i], ReplayLSN: lsns[i],
				WalReceiver: "streaming", SenderHost: primary}}
	}
	reg := func(addr string) cluster.Registration {
		return cluster.Registration{Address: addr, BindAddr: addr + ":7800", DBPort: 5432}
	}
	cl.must(cl.store.Bootstrap(ctx, dcs.Info{Name: flowClusterName, CreatedBy: primary}, reg(primary)))
	for _, s := range standbys {
		cl.must(cl.store.Allow(ctx, s, primary))
		cl.must(cl.store.Register(ctx, reg(s)))
	}
	cl.must(cl.store.InitPrimary(ctx, dcs.Primary{Node: primary, Epoch: 1, Phase: dcs.PhasePromoted, Timeline: 1}))
	return cl
}

func (cl *flowCluster) must(err error) {
	cl.t.Helper()
	if err != nil {
		cl.t.Fatal(err)
	}
}

// probe observes host's fake database as seen from observer: nothing
// answers across a cut.
func (cl *flowCluster) probe(observer string) func(ctx context.Context, connString string) (cluster.DBObservation, error) {
	hostRE := regexp.MustCompile(`host='([^']*)'`)
	return func(ctx context.Context, connString string) (cluster.DBObservation, error) {
		m := hostRE.FindStringSubmatch(connString)
		if m == nil {
			return cluster.DBObservation{Error: "no host"}, fmt.Errorf("no host in %q", connString)
		}
		cl.mu.Lock()
		db, cut := cl.dbs[m[1]], m[1] != observer && (cl.cutOff[m[1]] || cl.cutOff[observer])
		cl.mu.Unlock()
		if db == nil || cut {
			return cluster.DBObservation{Error: "timeout"}, fmt.Errorf("timeout")
		}
		return db.observation(), nil
	}
}

// flowConfig is one node's configuration; change may adjust it.
func flowConfig(t *testing.T, addr string) config.Config {
	return config.Config{
		Cluster: flowClusterName, BindAddress: netip.MustParseAddrPort(addr + ":7800"), AdminPort: 7809,
		DB:          config.DB{User: "postgres", Port: 5432, Database: "postgres", DataDir: t.TempDir()},
		StateDir:    t.TempDir(),
		LocalPeriod: time.Second, LocalTimeout: time.Second, RemoteTimeout: time.Second, NodeTimeout: flowNodeTimeout,
		RecoveryCheckPeriod: 10 * time.Millisecond,
		Promotable:          true, AutoFailover: true, AutoReconfigure: true, MaxFailoverLag: decide.DefaultMaxFailoverLag,
		StopIsolatedPrimary: true, StopFailedPrimary: true,
	}
}

// start starts addr's agent as its sessionLoop would: a lease of
// node.timeout, a first publication, a campaign for coordinator; and its
// primary record watch and notification queue. Agents started earlier
// campaign earlier, so the first one started is the coordinator.
func (cl *flowCluster) start(addr string, change ...func(*config.Config)) *flowAgent {
	cl.t.Helper()
	cfg := flowConfig(cl.t, addr)
	for _, c := range change {
		c(&cfg)
	}
	log := slog.New(flowLogHandler{r: cl.log})
	a := New(cfg, log)
	a.probe = cl.probe(addr)
	a.senders = cl.senders(addr)
	a.syncNames = func(context.Context, string) (string, error) {
		db := cl.dbs[addr]
		db.mu.Lock()
		defer db.mu.Unlock()
		return db.syncNames, nil
	}
	a.waitReplayed = func(ctx context.Context, _ string, lsn cluster.LSN, poll time.Duration) (cluster.LSN, error) {
		for {
			o := cl.dbs[addr].observation()
			if o.ReplayLSN > lsn {
				return o.ReplayLSN, nil
			}
			select {
			case <-ctx.Done():
				return o.ReplayLSN, ctx.Err()
			case <-time.After(poll):
			}
		}
	}
	a.store = cl.store
	a.exec = &executor{db: cl.dbs[addr], margin: a.fenceMargin(), leaseValidFor: a.leaseValidFor}
	a.runner = hook.NewRunner(a.log)
	a.notes = hook.NewQueue(hook.NewNotifier(hook.NotifyConfig{}, hook.NewRunner(a.log), a.log), notificationQueue)
	a.startedAt = time.Now().UTC()
	a.ready = true // serves the API, as once its member has joined
	ctx, cancel := context.WithCancel(cl.ctx)
	ta := &flowAgent{Agent: a, pg: cl.dbs[addr], cancel: cancel}
	cl.agents[addr] = ta
	ta.wg.Add(2)
	go func() { defer ta.wg.Done(); a.primaryLoop(ctx) }()
	go func() { defer ta.wg.Done(); a.notes.Run(ctx) }()
	ta.ctx = ctx
	cl.sync(ta)
	cl.newLease(ta)
	return ta
}

// newLease does what sessionLoop does with each lease, bar KeepAlive
// (RenewLeases stands for it): hold it, publish, campaign with it.
func (cl *flowCluster) newLease(ta *flowAgent) *dcs.Lease {
	cl.t.Helper()
	l, err := cl.store.GrantLease(ta.ctx, ta.cfg.NodeTimeout, ta.self)
	cl.must(err)
	ta.mu.Lock()
	ta.live, ta.lease = l, l
	ta.coordinator, ta.election = false, nil
	ta.mu.Unlock()
	ta.publish(ta.ctx)
	ta.wg.Add(1)
	go func() { defer ta.wg.Done(); ta.campaign(ta.ctx, l) }()
	return l
}

// stop ends the agent's goroutines, as when its process dies.
func (ta *flowAgent) stop() {
	ta.cancel()
	ta.wg.Wait()
}

// sync waits until ta has seen the current primary record.
func (cl *flowCluster) sync(agents ...*flowAgent) {
	cl.t.Helper()
	snap, err := cl.store.Snapshot(cl.ctx)
	cl.must(err)
	for _, a := range agents {
		cl.waitFor(a.self+" sees the primary record at revision "+fmt.Sprint(snap.PrimaryRev), func() bool {
			_, rev := a.currentPrimary()
			return rev >= snap.PrimaryRev
		})
	}
}

func (cl *flowCluster) waitFor(what string, cond func() bool) {
	cl.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if cl.ctx.Err() != nil || time.Now().After(deadline) {
			cl.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// advance moves the clock by d in steps of a renewal period, the agents
// not cut off renewing their leases at each step (their KeepAlive).
func (cl *flowCluster) advance(d time.Duration) {
	step := config.RenewPeriod(flowNodeTimeout)
	for d > 0 {
		s := min(step, d)
		cl.clock.advance(s)
		cl.store.RenewLeases(cl.ctx)
		cl.store.Expire()
		d -= s
	}
}

// cut isolates addr: its lease is no longer renewed and no database
// probe crosses between it and the others.
func (cl *flowCluster) cut(addr string) {
	cl.store.Cut(addr)
	cl.mu.Lock()
	cl.cutOff[addr] = true
	cl.mu.Unlock()
}

func (cl *flowCluster) heal(addr string) {
	cl.store.Restore(addr)
	cl.mu.Lock()
	delete(cl.cutOff, addr)
	cl.mu.Unlock()
}

// coordinator waits until one of the agents holds the won election.
func (cl *flowCluster) coordinator(want string) (*flowAgent, dcs.Guard) {
	cl.t.Helper()
	a := cl.agents[want]
	var el *dcs.Election
	cl.waitFor(want+" is the coordinator", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		el = a.election
		return el != nil
	})
	if c, err := cl.store.Coordinator(cl.ctx); err != nil || c != want {
		cl.t.Fatalf("Coordinator = %q, %v; want %s", c, err, want)
	}
	return a, el.Guard()
}

func (cl *flowCluster) record() (dcs.Primary, int64) {
	cl.t.Helper()
	snap, err := cl.store.Snapshot(cl.ctx)
	cl.must(err)
	return snap.Primary, snap.PrimaryRev
}

func (cl *flowCluster) status(addr string) (cluster.MemberStatus, bool) {
	cl.t.Helper()
	snap, err := cl.store.Snapshot(cl.ctx)
	cl.must(err)
	st, ok := snap.Status[addr]
	return st, ok
}

// publishAll has every running agent observe and publish, in order.
func (cl *flowCluster) publishAll(agents ...*flowAgent) {
	for _, a := range agents {
		a.publish(cl.ctx)
	}
}

// wantDB checks what reached a node's database.
func wantDB(t *testing.T, a *flowAgent, want ...string) {
	t.Helper()
	if got := a.pg.Calls(); !slices.Equal(got, want) {
		t.Errorf("%s's database saw %q, want %q", a.self, got, want)
	}
}

func (cl *flowCluster) wantNotified(subjects ...string) {
	cl.t.Helper()
	got := cl.log.notifications()
	for _, s := range subjects {
		if !slices.Contains(got, s) {
			cl.t.Errorf("no notification %q; notified: %q", s, got)
		}
	}
}

func followedFile(a *flowAgent) string {
	b, _ := os.ReadFile(a.followedPath())
	return strings.TrimSpace(string(b))
}

func (f *fakePG) Rewind(_ context.Context, _ string, dryRun bool, _ time.Duration) (postgres.Rewind, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(fmt.Sprintf("rewind dry-run=%t", dryRun))
	return postgres.Rewind{}, nil
}

func (f *fakePG) DiscardedWAL(context.Context, cluster.LSN, uint32, time.Duration) (postgres.Discarded, error) {
	return postgres.Discarded{}, nil
}

func (f *fakePG) Basebackup(context.Context, string, int, string, postgres.BackupOptions, time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("basebackup")
	return "", nil
}

func (f *fakePG) SetStandbySetting(string, string) error { return nil }

func (f *fakePG) SetSyncStandbyNames(_ context.Context, _, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("synchronous_standby_names=" + value)
	f.syncNames = value
	return nil
}

// senders is host's pg_stat_replication: every running fake database in
// recovery that streams from it, by its address as application_name.
func (cl *flowCluster) senders(host string) func(context.Context, string) (postgres.Senders, error) {
	return func(context.Context, string) (postgres.Senders, error) {
		var out postgres.Senders
		out.CurrentLSN = cl.dbs[host].observation().CurrentLSN
		for addr, db := range cl.dbs {
			o := db.observation()
			if addr != host && o.Up && o.InRecovery && o.SenderHost == host && o.WalReceiver == "streaming" {
				out.Senders = append(out.Senders, postgres.Sender{ApplicationName: addr, State: "streaming", SyncState: "quorum", FlushLSN: o.ReceiveLSN})
			}
		}
		return out, nil
	}
}
