package testenv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdBinaryEnv names a prebuilt etcd server binary; without it the
// harness builds the etcd that go.mod requires, once per test process.
const EtcdBinaryEnv = "PGFM_TEST_ETCD"

// The module's root package is etcd's main (a wrapper of etcdmain).
var etcdBinary = &builtBinary{env: EtcdBinaryEnv, name: "etcd", pkg: "go.etcd.io/etcd/server/v3"}

// EtcdBinary returns the etcd server binary external clusters run.
func EtcdBinary(t testing.TB) string { return etcdBinary.get(t) }

// CleanupEtcdBinary removes a binary EtcdBinary built; call it from TestMain.
func CleanupEtcdBinary() { etcdBinary.cleanup() }

// EtcdUserPrefix is the key prefix the user of EtcdClusterOptions may
// read and write: pgfm's keys.
const EtcdUserPrefix = "/pgfm/"

// EtcdClusterOptions shapes an external etcd cluster.
type EtcdClusterOptions struct {
	Members    int // default 3
	ElectionMs int // election timeout; default 500, the heartbeat a fifth of it
	// TLS puts client and peer traffic on TLS with client certificates
	// required, all from a CA made for the test.
	TLS bool
	// User and Password, when set, turn etcd auth on with this user
	// allowed to read and write EtcdUserPrefix only.
	User, Password string
}

// EtcdCluster is a cluster of real etcd server processes on loopback
// addresses, killed and removed when the test ends.
type EtcdCluster struct {
	// Set when TLS: the CA and a client certificate it signed.
	CACertFile, ClientCertFile, ClientKeyFile string

	opts                  EtcdClusterOptions
	rootPass              string      // set once auth is on
	tls                   *tls.Config // client side, nil without TLS
	serverCert, serverKey string
	bin                   string
	base                  string
	token                 string
	members               []*etcdMember
	t                     testing.TB
}

type etcdMember struct {
	name, host           string
	clientPort, peerPort int
	out                  *syncBuffer // every run's output

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartEtcdCluster starts the members and waits until the cluster serves
// linearizable reads, with auth set up when asked.
func StartEtcdCluster(t testing.TB, opts EtcdClusterOptions) *EtcdCluster {
	t.Helper()
	if opts.Members == 0 {
		opts.Members = 3
	}
	if opts.ElectionMs == 0 {
		opts.ElectionMs = 500
	}
	if (opts.User == "") != (opts.Password == "") {
		t.Fatalf("testenv: etcd User and Password go together")
	}
	if opts.User == "root" {
		t.Fatalf("testenv: etcd User root is the harness's own")
	}
	c := &EtcdCluster{opts: opts, bin: EtcdBinary(t), base: TempDir(t), t: t,
		token: fmt.Sprintf("pgfm-test-%x", mrand.Uint64())}
	hosts := Hosts(t, opts.Members)
	for i, h := range hosts {
		m := &etcdMember{name: fmt.Sprintf("m%d", i+1), host: h, clientPort: FreePort(t, h), out: &syncBuffer{}}
		for m.peerPort = FreePort(t, h); m.peerPort == m.clientPort; {
			m.peerPort = FreePort(t, h)
		}
		c.members = append(c.members, m)
	}
	if opts.TLS {
		c.setupTLS(t, hosts)
	}
	// Registered after TempDir's, so it runs first: processes die before
	// their data goes.
	t.Cleanup(c.cleanup)
	for i := range c.members {
		c.start(t, i, "new")
	}
	c.waitServing(t, true)
	if opts.User != "" {
		c.setupAuth(t)
	}
	return c
}

func (c *EtcdCluster) setupTLS(t testing.TB, hosts []string) {
	dir := filepath.Join(c.base, "pki")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Peers dial each other from 127.0.0.1 (the loopback route's source)
	// and etcd checks a peer's certificate against its source address.
	p, err := writePKI(dir, append([]string{"127.0.0.1"}, hosts...))
	if err != nil {
		t.Fatalf("testenv: etcd certificates: %v", err)
	}
	c.CACertFile, c.ClientCertFile, c.ClientKeyFile = p.CACert, p.ClientCert, p.ClientKey
	caPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	c.tls = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
	c.serverCert, c.serverKey = p.ServerCert, p.ServerKey
}

func (c *EtcdCluster) scheme() string {
	if c.opts.TLS {
		return "https"
	}
	return "http"
}

func (c *EtcdCluster) url(host string, port int) string {
	return c.scheme() + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// args is member i's command line; state is "new" or "existing" (which
// etcd ignores once the data dir holds a member).
func (c *EtcdCluster) args(i int, state string) []string {
	m := c.members[i]
	var peers []string
	for _, p := range c.members {
		peers = append(peers, p.name+"="+c.url(p.host, p.peerPort))
	}
	client, peer := c.url(m.host, m.clientPort), c.url(m.host, m.peerPort)
	a := []string{
		"--name", m.name, "--data-dir", filepath.Join(c.base, m.name),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", state,
		"--initial-cluster-token", c.token,
		"--election-timeout", strconv.Itoa(c.opts.ElectionMs),
		"--heartbeat-interval", strconv.Itoa(c.opts.ElectionMs / 5),
		// SIGKILL loses nothing the page cache holds: fsync only slows us.
		"--unsafe-no-fsync",
		// The lowest bcrypt cost: every authentication hashes a password.
		"--bcrypt-cost", "4",
	}
	if c.opts.TLS {
		a = append(a, "--cert-file", c.serverCert, "--key-file", c.serverKey,
			"--trusted-ca-file", c.CACertFile, "--client-cert-auth",
			"--peer-cert-file", c.serverCert, "--peer-key-file", c.serverKey,
			"--peer-trusted-ca-file", c.CACertFile, "--peer-client-cert-auth")
	}
	return a
}

func (c *EtcdCluster) start(t testing.TB, i int, state string) {
	t.Helper()
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runningLocked() {
		t.Fatalf("testenv: etcd member %s already runs", m.name)
	}
	cmd := exec.Command(c.bin, c.args(i, state)...)
	cmd.Stdout, cmd.Stderr = m.out, m.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start etcd member %s: %v", m.name, err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

func (m *etcdMember) runningLocked() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *etcdMember) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runningLocked()
}

func (m *etcdMember) signal(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runningLocked() {
		_ = syscall.Kill(-m.cmd.Process.Pid, sig)
	}
}

// kill SIGKILLs the member (frozen or not) and waits for its exit.
func (m *etcdMember) kill() error {
	m.signal(syscall.SIGKILL)
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("etcd member %s still runs 30s after SIGKILL", m.name)
	}
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, c.url(m.host, m.clientPort))
	}
	return eps
}

// ClientAddr is member i's client address, host:port: a proxy's target.
// A proxy in front of a TLS cluster must listen on a member's host, the
// only addresses its certificate names.
func (c *EtcdCluster) ClientAddr(i int) string {
	m := c.members[i]
	return net.JoinHostPort(m.host, strconv.Itoa(m.clientPort))
}

// Kill SIGKILLs member i and waits until it is gone.
func (c *EtcdCluster) Kill(i int) {
	if err := c.members[i].kill(); err != nil {
		c.t.Fatalf("testenv: %v", err)
	}
}

// Start restarts a killed member i on its data, as an existing member;
// it does not wait for the member to serve (WaitServing does).
func (c *EtcdCluster) Start(t testing.TB, i int) {
	t.Helper()
	c.start(t, i, "existing")
}

// Freeze stops member i with SIGSTOP: alive, but silent.
func (c *EtcdCluster) Freeze(i int) { c.members[i].signal(syscall.SIGSTOP) }

// Thaw resumes a frozen member i with SIGCONT.
func (c *EtcdCluster) Thaw(i int) { c.members[i].signal(syscall.SIGCONT) }

// Log is everything member i printed, over all its runs.
func (c *EtcdCluster) Log(i int) string { return c.members[i].out.String() }

// ClientConfig is a client configuration for endpoints (default
// Endpoints()) with the cluster's TLS and, once auth is on, root's
// credentials: a base for clients through proxies or as other users.
func (c *EtcdCluster) ClientConfig(endpoints ...string) clientv3.Config {
	if len(endpoints) == 0 {
		endpoints = c.Endpoints()
	}
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// The client logs every retry against a killed member to stderr.
		Logger: zap.NewNop(),
	}
	if c.tls != nil {
		cfg.TLS = c.tls.Clone()
	}
	if c.rootPass != "" {
		cfg.Username, cfg.Password = "root", c.rootPass
	}
	return cfg
}

// Client is a client of every member, as root when auth is on (then it
// authenticates at once, so the cluster must serve), closed when the test
// ends.
func (c *EtcdCluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(c.ClientConfig())
	if err != nil {
		t.Fatalf("testenv: etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// WaitServing waits until a linearizable read succeeds, failing the test
// with the members' log tails after a minute.
func (c *EtcdCluster) WaitServing(t testing.TB) {
	t.Helper()
	c.waitServing(t, false)
}

// waitServing is WaitServing; with allUp it gives up as soon as a member
// exits (a bad flag, a taken port), as at start.
func (c *EtcdCluster) waitServing(t testing.TB, allUp bool) {
	t.Helper()
	err := poll(time.Minute, func() (bool, error) {
		for _, m := range c.members {
			if allUp && !m.running() {
				return false, GiveUp(fmt.Errorf("etcd member %s exited", m.name))
			}
		}
		// A new client each time: an old one would wait out gRPC's
		// reconnection backoff (1 s and growing) for members starting up.
		cfg := c.ClientConfig()
		cfg.DialTimeout = 2 * time.Second
		cli, err := clientv3.New(cfg)
		if err != nil {
			return false, err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = cli.Get(ctx, "health")
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("testenv: etcd cluster not serving: %v\n%s", err, c.logTails())
	}
}

// setupAuth creates root with a random password and the user with a role
// limited to EtcdUserPrefix, then turns auth on.
func (c *EtcdCluster) setupAuth(t testing.TB) {
	t.Helper()
	cli, err := clientv3.New(c.ClientConfig())
	if err != nil {
		t.Fatalf("testenv: etcd client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rootPass := rand.Text()
	const role = "pgfm-rw"
	steps := []struct {
		what string
		do   func() error
	}{
		{"add root", func() error { _, err := cli.UserAdd(ctx, "root", rootPass); return err }},
		// The root role exists without being added.
		{"grant root", func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err }},
		{"add role", func() error { _, err := cli.RoleAdd(ctx, role); return err }},
		{"grant prefix", func() error {
			_, err := cli.RoleGrantPermission(ctx, role, EtcdUserPrefix,
				clientv3.GetPrefixRangeEnd(EtcdUserPrefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user", func() error { _, err := cli.UserAdd(ctx, c.opts.User, c.opts.Password); return err }},
		{"grant user", func() error { _, err := cli.UserGrantRole(ctx, c.opts.User, role); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("testenv: etcd auth: %s: %v", s.what, err)
		}
	}
	c.rootPass = rootPass
}

// logTails is the end of every member's output.
func (c *EtcdCluster) logTails() string {
	var b strings.Builder
	for i, m := range c.members {
		fmt.Fprintf(&b, "etcd member %s (%s) output (tail):\n%s\n", m.name, m.host, tail(c.Log(i), 30))
	}
	return b.String()
}

func (c *EtcdCluster) cleanup() {
	for _, m := range c.members {
		if err := m.kill(); err != nil {
			c.t.Errorf("testenv: %v", err)
		}
	}
	if c.t.Failed() {
		c.t.Logf("testenv: %s", c.logTails())
	}
}

// Keys reads every key under prefix with its value, at one revision.
func (c *EtcdCluster) Keys(t testing.TB, prefix string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Client(t).Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("testenv: etcd keys under %s: %v", prefix, err)
	}
	keys := make(map[string]string, len(r.Kvs))
	for _, kv := range r.Kvs {
		keys[string(kv.Key)] = string(kv.Value)
	}
	return keys
}
