package etcdmember

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Timing of the consensus layer. DESIGN.md §2 has the measurements behind
// these values: a new etcd leader 1.0–1.4 s after the old one dies.
const (
	DefaultTickMs     = 100
	DefaultElectionMs = 1000
)

// Config describes one embedded member.
type Config struct {
	Name string // unique in the cluster: the agent's bind.address
	// DataDir holds the member's WAL and snapshots. Empty on first start.
	DataDir string
	// PeerURL is where other members reach this one (http://bind.address).
	PeerURL url.URL
	// ClientSocket is the unix socket the local agent's client uses; the
	// client API is never exposed on the network.
	ClientSocket string
	// InitialCluster ("name=url,...") and State ("new" or "existing") are
	// used only when DataDir is empty.
	InitialCluster string
	State          string
	Token          string

	// Peer TLS (PEM files): with them, the peer URL is https:// and a
	// peer must present a certificate of CAFile's CA (mutual TLS), so
	// nobody else can read or write the cluster's consensus.
	PeerCAFile, PeerCertFile, PeerKeyFile string

	TickMs, ElectionMs uint
	// LogLevel of etcd's own logger ("error" by default): etcd is chatty.
	LogLevel string
}

// Member is a running embedded etcd member.
type Member struct {
	cfg       Config
	etcd      *embed.Etcd
	level     zap.AtomicLevel
	closeOnce sync.Once
}

// ClientURL is the endpoint for a client of the local member.
func (c Config) ClientURL() string { return "unix://" + c.ClientSocket }

// HasData reports whether dir holds a member's data (so it must restart as
// the same member rather than bootstrap or join).
func HasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

// Start launches the member. It returns once the listeners are up; the
// member serves requests only after Ready() is closed, which needs a quorum.
func Start(cfg Config) (*Member, error) {
	if len(cfg.ClientSocket) > 100 {
		return nil, fmt.Errorf("etcd member: client socket path %q is longer than unix sockets allow (100 bytes); choose a shorter state.dir", cfg.ClientSocket)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.ClientSocket), 0o700); err != nil {
		return nil, fmt.Errorf("etcd member: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd member: %w", err)
	}
	// A stale socket from a crash would make the listener fail.
	if err := os.Remove(cfg.ClientSocket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("etcd member: remove stale socket: %w", err)
	}
	ec, level, err := embedConfig(cfg)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcd member %s: start: %w", cfg.Name, err)
	}
	return &Member{cfg: cfg, etcd: e, level: level}, nil
}

func embedConfig(cfg Config) (*embed.Config, zap.AtomicLevel, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.TickMs = orDefault(cfg.TickMs, DefaultTickMs)
	ec.ElectionMs = orDefault(cfg.ElectionMs, DefaultElectionMs)
	ec.ListenPeerUrls = []url.URL{cfg.PeerURL}
	ec.AdvertisePeerUrls = []url.URL{cfg.PeerURL}
	cu := url.URL{Scheme: "unix", Path: cfg.ClientSocket}
	ec.ListenClientUrls = []url.URL{cu}
	ec.AdvertiseClientUrls = []url.URL{cu}
	ec.InitialCluster = cfg.InitialCluster
	ec.ClusterState = cfg.State
	ec.InitialClusterToken = cfg.Token
	ec.StrictReconfigCheck = true
	ec.PreVote = true
	// Agents publish status every local.period: keep history short.
	ec.AutoCompactionMode = "revision"
	ec.AutoCompactionRetention = "1000"
	ec.SnapshotCount = 10000
	ec.QuotaBackendBytes = 256 << 20
	ec.ListenMetricsUrls = nil
	if cfg.PeerCertFile != "" {
		ec.PeerTLSInfo = transport.TLSInfo{
			CertFile: cfg.PeerCertFile, KeyFile: cfg.PeerKeyFile, TrustedCAFile: cfg.PeerCAFile,
			ClientCertAuth: true, ClientCertFile: cfg.PeerCertFile, ClientKeyFile: cfg.PeerKeyFile,
			// etcd would also match a peer certificate's IP against the
			// connection's source, which is not the peer's bind.address
			// on a host with several addresses. The CA is the proof.
			SkipClientSANVerify: true,
		}
	}
	level := cfg.LogLevel
	if level == "" {
		level = "error"
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("etcd member: log level %q: %w", level, err)
	}
	zc := zap.NewProductionConfig()
	atomic := zap.NewAtomicLevelAt(lvl)
	zc.Level = atomic
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	zc.Sampling = nil
	lg, err := zc.Build()
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("etcd member: logger: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg.Named("etcd"))
	return ec, atomic, nil
}

func orDefault(v, d uint) uint {
	if v == 0 {
		return d
	}
	return v
}

// Ready is closed once the member serves requests (it has a leader and has
// published itself).
func (m *Member) Ready() <-chan struct{} { return m.etcd.Server.ReadyNotify() }

// Stopped is closed when the member stops by itself, e.g. after being
// removed from the cluster.
func (m *Member) Stopped() <-chan struct{} { return m.etcd.Server.StopNotify() }

// Err reports fatal errors of the member's servers.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// ID is the member's etcd ID.
func (m *Member) ID() uint64 { return uint64(m.etcd.Server.MemberID()) }

// IsLearner reports whether this member is still a non-voting learner.
func (m *Member) IsLearner() bool { return m.etcd.Server.IsLearner() }

// Endpoint is the local client endpoint.
func (m *Member) Endpoint() string { return m.cfg.ClientURL() }

// WaitReady waits for Ready, a fatal error, a self-stop or ctx.
func (m *Member) WaitReady(ctx context.Context) error {
	select {
	case <-m.Ready():
		return nil
	case err := <-m.Err():
		return fmt.Errorf("etcd member %s: %w", m.cfg.Name, err)
	case <-m.Stopped():
		return fmt.Errorf("etcd member %s stopped before it was ready: %w", m.cfg.Name, ErrStopped)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitVoter waits until this member has applied its promotion from learner.
func (m *Member) WaitVoter(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for m.IsLearner() {
		select {
		case <-t.C:
		case <-m.Stopped():
			return fmt.Errorf("etcd member %s: %w", m.cfg.Name, ErrStopped)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ErrStopped: the member stopped by itself (most often: it was removed from
// the cluster, and its data is useless).
var ErrStopped = errors.New("the member stopped by itself; it may have been removed from the cluster")

// Close stops the member; safe to call more than once. It waits at most
// a few seconds for etcd's own shutdown.
func (m *Member) Close() {
	m.closeOnce.Do(func() {
		// etcd reports its own listeners closing as errors: silence it.
		m.level.SetLevel(zapcore.FatalLevel)
		done := make(chan struct{})
		go func() { m.etcd.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
}
