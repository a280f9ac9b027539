package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/consensus"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/etcdmember"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/pki"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/version"
)

// Reasons an agent stops other than its context ending. cmd/pgfm maps
// them to exit codes so systemd restarts only what a restart can fix.
var (
	// ErrStopCluster: stop-cluster was requested; a clean exit.
	ErrStopCluster = errors.New("stop-cluster requested: the agent stops, the database keeps running")
	// ErrRemoved and ErrRefused: see package consensus; the agent also
	// returns them (a removal seen while running, a lock held).
	ErrRemoved = consensus.ErrRemoved
	ErrRefused = consensus.ErrRefused
)

// Agent is one node's pgfm agent.
type Agent struct {
	cfg       config.Config
	log       *slog.Logger
	self      string // bind.address IP, the node's identity
	bind      string // bind.address host:port, the etcd member name
	peerURL   url.URL
	adminURL  string
	startedAt time.Time

	binDir string    // PostgreSQL programs (db.bin or pg_config --bindir)
	exec   *executor // the only hand on the postmaster and the virtual IP
	// probe observes a database (postgres.Observe; a fake in flow tests).
	probe func(ctx context.Context, connString string) (cluster.DBObservation, error)
	// waitReplayed waits for the local standby's replay to pass an LSN
	// (postgres.WaitReplayed; a fake in flow tests).
	waitReplayed func(ctx context.Context, connString string, lsn cluster.LSN, poll time.Duration) (cluster.LSN, error)
	// senders reads a primary's WAL senders (postgres.Replication; a fake
	// in flow tests).
	senders func(ctx context.Context, connString string) (postgres.Senders, error)
	// syncNames reads synchronous_standby_names (postgres.SyncStandbyNames;
	// a fake in flow tests).
	syncNames func(ctx context.Context, connString string) (string, error)
	runner    *hook.Runner
	notes     *hook.Queue // notifications, delivered off the caller's path

	member  *etcdmember.Member // nil with an external etcd
	store   store
	members membership // nil with an external etcd
	token   string
	// startRev is the etcd revision when the agent started serving.
	startRev int64

	fatal       chan error
	publishKick chan struct{} // observe and publish now
	roleKick    chan struct{} // re-check what the primary record asks of us
	coordKick   chan struct{} // the coordinator should decide now
	syncKick    chan struct{} // the synchronous set should be checked now
	publishMu   sync.Mutex    // one publish at a time

	mu          sync.Mutex
	ready       bool
	status      cluster.MemberStatus
	live        *dcs.Lease // the lease while it is held; nil once lost
	lease       *dcs.Lease // the last lease granted, kept for the fence loop
	fencedLease *dcs.Lease // the lease whose loss was acted on (once per lease)
	coordinator bool
	election    *dcs.Election

	primary      dcs.Primary
	primaryRev   int64
	rejoinReason string // set when a newer epoch made this node's database stale
	followed     uint64 // epoch this standby last re-pointed itself for
	followedRead bool   // state.dir's followed-epoch file was read
	idle         *idleState
	observedOnce bool
	// lastResumeTry paces auto.resume.*.period; only publish touches it.
	lastResumeTry time.Time
	// restartingUntil: a local restart of the primary's postmaster is under
	// way (primary.restart.timeout) and holds failover back until then.
	restartingUntil time.Time
	restartTried    bool   // one local restart per crash
	failedStopEpoch uint64 // last epoch whose failed primary (this node) was stopped (stop.failed.primary)
	// demoted: this node, the old primary of a switchover, stopped for it.
	demoted  *cluster.Demotion
	demoting uint64 // the switchover epoch for which it is stopping or stopped
	// rebuiltEpoch is the last epoch a rebuild was tried for; rebuilding
	// says what runs now ("" when nothing).
	rebuiltEpoch uint64
	// isolatedEpoch is the epoch in which this named primary stopped its
	// database when cut off from the majority; 0 once it runs again.
	isolatedEpoch uint64
	// startingUntil: the agent starts its stopped database on purpose
	// (startOnPurpose); until then a database that does not answer is no
	// failure, so the agent does not go idle.
	startingUntil time.Time
	rebuilding    string
	// createFailed says why the last create-standby failed ("" when none).
	createFailed string
	// sync is what the agent knows of the synchronous set (syncLoop).
	sync syncMemory

	joinMu sync.Mutex // admissions through this member, one at a time

	// creds are this node's certificate and the cluster's CA, set by the
	// consensus start-up; the admin API serves TLS with them.
	creds pki.Holder
	// probes are the status reports' recent database observations.
	probes recentProbes
}

// notificationQueue is how many notifications may wait for delivery; a
// failover sends about ten, so this holds several behind a slow script.
const notificationQueue = 64

// New prepares an agent for cfg; Run starts it.
func New(cfg config.Config, log *slog.Logger) *Agent {
	self := cfg.BindAddress.Addr().String()
	return &Agent{
		cfg:          cfg,
		log:          log.With("cluster", cfg.Cluster, "node", self),
		self:         self,
		bind:         cfg.BindAddress.String(),
		peerURL:      url.URL{Scheme: "https", Host: cfg.BindAddress.String()},
		adminURL:     httpapi.URL(self, cfg.AdminPort),
		fatal:        make(chan error, 4),
		publishKick:  make(chan struct{}, 1),
		roleKick:     make(chan struct{}, 1),
		coordKick:    make(chan struct{}, 1),
		syncKick:     make(chan struct{}, 1),
		probe:        postgres.Observe,
		senders:      postgres.Replication,
		syncNames:    postgres.SyncStandbyNames,
		waitReplayed: postgres.WaitReplayed,
	}
}

// Run runs the agent until ctx ends or the agent must stop; it returns
// nil after a clean stop requested through ctx.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.startedAt = time.Now().UTC()
	lock, err := acquireLock(a.cfg.LockDir, a.cfg.Cluster)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	defer lock.release()
	if err := a.prepare(); err != nil {
		return err
	}
	defer a.dbPassword().Close() // a password script still running when the agent stops
	a.fetchPassword(ctx)         // script.db.password runs once at start (EFM); bounded by script.timeout
	a.log.Info("agent starting", "version", version.Version, "bind", a.bind, "admin", a.adminURL, "witness", a.cfg.IsWitness)
	srv, err := a.serveAPI()
	if err != nil {
		return err
	}
	defer srv.Close()
	if a.cfg.PrimaryHealthCheckPort != 0 {
		hs, err := a.serveHealthCheck()
		if err != nil {
			return err
		}
		defer hs.Close()
	}

	if err := a.startConsensus(ctx); err != nil {
		if ctx.Err() != nil {
			a.log.Info("agent stopping (signal) before it joined the cluster")
			return nil
		}
		return err
	}
	defer a.closeConsensus()
	if err := a.store.ClearCleanStop(ctx, a.self); err != nil {
		a.log.Warn("cannot clear the clean-stop marker", "err", err)
	}
	// stop-cluster requests older than this agent's start are history.
	if rev, err := a.store.Revision(ctx); err == nil {
		a.startRev = rev
	}
	loopCtx, cancel := context.WithCancel(ctx)
	wait := a.startLoops(loopCtx)
	a.setReady(true)
	var stopped <-chan struct{}
	var failed <-chan error
	if a.member != nil {
		a.log.Info("agent running", "member_id", fmt.Sprintf("%x", a.member.ID()))
		stopped, failed = a.member.Stopped(), a.member.Err()
	} else {
		a.log.Info("agent running", "etcd", a.cfg.DCS.Endpoints)
	}

	select {
	case <-ctx.Done():
		a.log.Info("agent stopping (signal); the database keeps running")
	case err = <-a.fatal:
	case <-stopped:
		err = fmt.Errorf("the embedded etcd member stopped: %w", etcdmember.ErrStopped)
	case merr := <-failed:
		err = fmt.Errorf("the embedded etcd member failed: %w", merr)
	}
	a.setReady(false)
	cancel()
	wait()
	a.leave(errors.Is(err, ErrStopCluster), err == nil || errors.Is(err, ErrStopCluster))
	if errors.Is(err, ErrRemoved) {
		a.forgetMembership()
	}
	return err
}

// prepare resolves what the agent needs before it serves: PostgreSQL's
// programs, the script runners, state.dir and the admin token.
func (a *Agent) prepare() (err error) {
	if !a.cfg.IsWitness {
		if a.binDir, err = postgres.BinDir(a.cfg.DB.Bin); err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	a.exec = &executor{db: a.server(), margin: a.fenceMargin(), leaseValidFor: a.leaseValidFor}
	if c, ok := a.vipConfig(); ok {
		a.exec.vip = hostVIP{c}
	}
	scripts, notify, err := a.scriptRunners()
	if err != nil {
		return err
	}
	a.runner = scripts
	level, _ := hook.ParseSeverity(a.cfg.NotificationLevel) // validated by config
	notifier := hook.NewNotifier(hook.NotifyConfig{
		Script: a.cfg.ScriptNotification, UserEmail: a.cfg.UserEmail, FromEmail: a.cfg.FromEmail,
		Level: level, TextPrefix: a.cfg.NotificationTextPrefix, Timeout: a.cfg.ScriptTimeout,
	}, notify, a.log) // its own runner: a notification never waits behind a fence script
	a.notes = hook.NewQueue(notifier, notificationQueue)
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state.dir: %w (set state.dir to a writable directory)", err)
	}
	a.token, err = writeToken(a.cfg.StateDir)
	return err
}

// serveAPI starts the HTTP API on bind.address's host at admin.port.
func (a *Agent) serveAPI() (*httpapi.Server, error) {
	srv := httpapi.NewServer(a, a.token, a.log)
	srv.UseTLS(&a.creds, a.cfg.AdminMaxConnections)
	l, err := net.Listen("tcp", net.JoinHostPort(a.self, strconv.Itoa(a.cfg.AdminPort)))
	if err != nil {
		return nil, fmt.Errorf("%w: admin API: %w (admin.port %d must be free on %s)", ErrRefused, err, a.cfg.AdminPort, a.self)
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			a.fail(fmt.Errorf("admin API: %w", err))
		}
	}()
	return srv, nil
}

// serveHealthCheck starts EFM 5.4's primary.health.check.port listener on
// bind.address's host: any path, 200 on the primary, 404 elsewhere.
func (a *Agent) serveHealthCheck() (*httpapi.HealthServer, error) {
	hs := httpapi.NewHealthCheckServer(a, a.log)
	l, err := net.Listen("tcp", net.JoinHostPort(a.self, strconv.Itoa(a.cfg.PrimaryHealthCheckPort)))
	if err != nil {
		return nil, fmt.Errorf("%w: primary.health.check.port: %w (the port must be free on %s)", ErrRefused, err, a.self)
	}
	go func() {
		if err := hs.Serve(l); err != nil {
			a.fail(fmt.Errorf("health-check port: %w", err))
		}
	}()
	return hs, nil
}

// startLoops starts the agent's loops, each owning one concern; the
// returned function waits for them after ctx ends.
func (a *Agent) startLoops(ctx context.Context) (wait func()) {
	loops := []func(context.Context){
		a.sessionLoop, a.publishLoop, a.watchLoop, a.coordinatorLoop,
		a.primaryLoop, a.roleLoop, a.fenceLoop, a.leaderLoop, a.notes.Run, a.syncLoop,
		func(ctx context.Context) { a.dbWatchLoop(ctx, a.primaryTarget) },
	}
	if !a.cfg.IsWitness {
		loops = append(loops, func(ctx context.Context) { a.dbWatchLoop(ctx, a.localTarget) })
	}
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx) }()
	}
	return wg.Wait
}

func (a *Agent) setReady(v bool) {
	a.mu.Lock()
	a.ready = v
	a.mu.Unlock()
}

// fail reports a condition that ends the agent; never blocks.
func (a *Agent) fail(err error) {
	select {
	case a.fatal <- err:
	default:
	}
}

// leave withdraws this agent's status at once (a clean stop is no
// failure to wait out) and gives up the coordinator role. For stop-cluster
// it then waits briefly for the other agents to go, so no agent is left
// without a quorum before it has seen the request.
func (a *Agent) leave(waitForOthers, clean bool) {
	a.mu.Lock()
	live := a.live
	a.live = nil
	a.mu.Unlock()
	if clean {
		// A clean stop is no failure (unless primary.shutdown.as.failure).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := a.store.MarkCleanStop(ctx, a.self); err != nil {
			a.log.Warn("cannot record the clean stop", "err", err)
		}
		cancel()
	}
	if live != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = live.Revoke(ctx)
		cancel()
	}
	if !waitForOthers {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n, err := a.store.StatusCount(ctx)
		cancel()
		if err == nil && n == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startConsensus brings this node into the cluster's consensus: its
// embedded etcd member and the store on it, or the store on an external
// etcd (package consensus).
func (a *Agent) startConsensus(ctx context.Context) error {
	j, err := consensus.Start(ctx, consensus.Node{
		Config: a.cfg, Log: a.log, Self: a.self, Bind: a.bind, PeerURL: a.peerURL, AdminURL: a.adminURL,
		LocalDB: a.observeLocal, Creds: &a.creds,
	})
	if err != nil {
		return err
	}
	a.member, a.store = j.Member, j.Store
	if j.Member != nil {
		a.members = j.Store // an external etcd's membership is not ours
	}
	return nil
}

// forgetMembership deletes the consensus data of a removed member: etcd
// refuses a removed member's data, so only a fresh join can bring it back.
func (a *Agent) forgetMembership() {
	a.closeConsensus()
	dir := filepath.Join(a.cfg.StateDir, "etcd")
	if err := os.RemoveAll(dir); err != nil {
		a.log.Error("could not delete the removed member's consensus data; delete it before starting again", "dir", dir, "err", err)
	}
}

func (a *Agent) closeConsensus() {
	// Clients and members close idempotently; the fields stay set so late
	// callers get errors, not nil pointers.
	if a.store != nil {
		a.store.Close()
	}
	if a.member != nil {
		a.member.Close()
	}
}

// writeToken creates the secret that admin commands on this host present:
// whoever can read the state directory may administer the cluster.
func writeToken(dir string) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	if err := replaceFile(TokenPath(dir), []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return tok, nil
}

// TokenPath is where the agent keeps the admin token in state.dir.
func TokenPath(stateDir string) string { return filepath.Join(stateDir, "admin.token") }
