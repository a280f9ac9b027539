package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clusterpki "github.com/pgfm/pgfm/internal/pki"
)

// BinaryEnv names a prebuilt pgfm binary to test (make bench sets it);
// without it the harness builds one per test process.
const BinaryEnv = "PGFM_TEST_BINARY"

var pgfmBinary = &builtBinary{env: BinaryEnv, name: "pgfm", pkg: "./cmd/pgfm", flags: []string{"-race"}}

// Binary returns the pgfm binary under test.
func Binary(t testing.TB) string { return pgfmBinary.get(t) }

// CleanupBinary removes a binary Binary built; call it from TestMain.
func CleanupBinary() { pgfmBinary.cleanup() }

// builtBinary is a program built from this module once per test process,
// unless the environment variable env names a prebuilt one.
type builtBinary struct {
	env, name, pkg string
	flags          []string

	once sync.Once
	path string
	err  error
}

func (b *builtBinary) get(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(b.env); p != "" {
		return p
	}
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "pgfm-"+b.name+"-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, b.name)
		args := append(append([]string{"build"}, b.flags...), "-o", b.path, b.pkg)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("testenv: %v", b.err)
	}
	return b.path
}

func (b *builtBinary) cleanup() {
	if b.path != "" {
		os.RemoveAll(filepath.Dir(b.path))
	}
}

// Node is one pgfm node of a test cluster: an agent process with its own
// config, state, lock and log directories, and (unless a witness) the
// PostgreSQL server on the same host.
type Node struct {
	Name      string
	Cluster   string // cluster name in its files
	Host      string
	BindPort  int
	AdminPort int
	PG        *PGNode // nil on a witness
	ConfigDir string
	StateDir  string
	LogDir    string
	LockDir   string
	bin       string
	dbPort    int
	t         testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

// Bind is the node's bind.address.
func (n *Node) Bind() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.BindPort)) }

// PropertiesFile is the node's CLUSTER.properties.
func (n *Node) PropertiesFile() string { return filepath.Join(n.ConfigDir, n.Cluster+".properties") }

// NodesFile is the node's CLUSTER.nodes.
func (n *Node) NodesFile() string { return filepath.Join(n.ConfigDir, n.Cluster+".nodes") }

// AgentCluster is PostgreSQL plus pgfm agents, all on loopback.
type AgentCluster struct {
	Name  string
	PG    *PGCluster
	Nodes []*Node // primary, standbys, then witnesses
	bin   string
	base  string
	t     testing.TB
	key   []byte // the cluster key every node gets, as an operator copies it
}

// AgentOptions shapes a test cluster.
type AgentOptions struct {
	Name      string // cluster name; default "prod"
	Standbys  int
	Witnesses int
	// Props are extra properties for every node.
	Props map[string]string
	// PGConf lines are appended to every server's postgresql.conf.
	PGConf []string
}

// NewAgentCluster creates PostgreSQL (a primary and Standbys streaming
// standbys) and writes every node's cluster files; no agent runs yet.
func NewAgentCluster(t testing.TB, opts AgentOptions) *AgentCluster {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "prod"
	}
	hosts := Hosts(t, 1+opts.Standbys+opts.Witnesses)
	pg := NewPGCluster(t, PGOptions{Standbys: opts.Standbys, Hosts: hosts[:1+opts.Standbys], ExtraConf: opts.PGConf})
	c := &AgentCluster{Name: opts.Name, PG: pg, bin: Binary(t), base: TempDir(t), t: t}
	bindPort := FreePort(t, hosts...)
	adminPort := FreePort(t, hosts...)
	for adminPort == bindPort {
		adminPort = FreePort(t, hosts...)
	}
	for i, h := range hosts {
		var pgn *PGNode
		name := fmt.Sprintf("witness%d", i-len(pg.Nodes)+1)
		if i < len(pg.Nodes) {
			pgn = pg.Nodes[i]
			name = pgn.Name
		}
		n := c.newNode(name, opts.Name, h, bindPort, adminPort, pgn)
		n.WriteProperties(t, opts.Props)
		c.Nodes = append(c.Nodes, n)
	}
	t.Cleanup(func() { c.cleanup() })
	return c
}

func (c *AgentCluster) newNode(name, cluster, host string, bindPort, adminPort int, pg *PGNode) *Node {
	dir := filepath.Join(c.base, name)
	n := &Node{
		Name: name, Cluster: cluster, Host: host, BindPort: bindPort, AdminPort: adminPort, PG: pg,
		ConfigDir: filepath.Join(dir, "etc"), StateDir: filepath.Join(dir, "state"),
		LogDir: filepath.Join(dir, "log"), LockDir: filepath.Join(dir, "lock"), bin: c.bin, t: c.t, dbPort: c.PG.Port,
	}
	for _, d := range []string{n.ConfigDir, n.LogDir, n.LockDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.t.Fatal(err)
		}
	}
	if c.key == nil {
		k, err := clusterpki.NewClusterKey(c.Name)
		if err == nil {
			c.key, err = k.PEM()
		}
		if err != nil {
			c.t.Fatalf("testenv: cluster key: %v", err)
		}
	}
	if err := os.WriteFile(n.ClusterKeyFile(), c.key, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// ClusterKeyFile is the node's copy of the cluster key (cluster.key.file's
// default), written before the node starts, as an operator copies it.
func (n *Node) ClusterKeyFile() string { return filepath.Join(n.ConfigDir, n.Cluster+".key") }

// AddNode adds a node on a new host (a witness, or an agent of another
// cluster name when cluster is set) that is not started.
func (c *AgentCluster) AddNode(t testing.TB, name, cluster string, props map[string]string) *Node {
	t.Helper()
	if cluster == "" {
		cluster = c.Name
	}
	p := c.Nodes[0]
	host := Hosts(t, 1)[0]
	if err := bindable(p.BindPort, []string{host}); err != nil {
		t.Fatalf("testenv: port %d not free on %s: %v", p.BindPort, host, err)
	}
	n := c.newNode(name, cluster, host, p.BindPort, p.AdminPort, nil)
	n.WriteProperties(t, props)
	n.WriteNodes(t, p)
	c.Nodes = append(c.Nodes, n)
	return n
}

// Primary is the node created as primary.
func (c *AgentCluster) Primary() *Node { return c.Nodes[0] }

// WriteProperties writes the node's CLUSTER.properties: the harness's
// settings, then extra (which may override them).
func (n *Node) WriteProperties(t testing.TB, extra map[string]string) {
	t.Helper()
	props := map[string]string{
		"db.user":        "postgres",
		"db.database":    "postgres",
		"bind.address":   n.Bind(),
		"admin.port":     strconv.Itoa(n.AdminPort),
		"state.dir":      n.StateDir,
		"lock.dir":       n.LockDir,
		"log.dir":        n.LogDir,
		"is.witness":     strconv.FormatBool(n.PG == nil),
		"local.period":   "0.5",
		"node.timeout":   "3",
		"remote.timeout": "2",
		// A 3 s lease rides out an etcd leader election only with an
		// election timeout of 0.5 s (config.LeaderLossTolerance): with the
		// default 1 s, losing the host of the etcd leader (a standby or
		// the witness) could make the primary fence itself.
		"dcs.election.timeout": "0.5",
	}
	if n.PG != nil {
		props["db.port"] = strconv.Itoa(n.PG.Port)
		props["db.data.dir"] = n.PG.DataDir
		props["db.bin"] = n.PG.BinDir
		props["db.service.owner"] = n.PG.Owner
	}
	for k, v := range extra {
		props[k] = v
	}
	if _, ok := props["db.port"]; !ok {
		props["db.port"] = strconv.Itoa(n.dbPort) // the same on every node, as EFM wants
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "# written by the pgfm test harness for node %s\n", n.Name)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, props[k])
	}
	if err := os.WriteFile(n.PropertiesFile(), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteNodes writes the node's CLUSTER.nodes listing the given nodes.
func (n *Node) WriteNodes(t testing.TB, members ...*Node) {
	t.Helper()
	var addrs []string
	for _, m := range members {
		addrs = append(addrs, m.Bind())
	}
	if err := os.WriteFile(n.NodesFile(), []byte(strings.Join(addrs, " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Start launches the agent process.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.startWith(t, (*exec.Cmd).Start)
}

// startWith launches the agent with start (a plain exec, or one inside a
// network namespace) and records its exit.
func (n *Node) startWith(t testing.TB, start func(*exec.Cmd) error) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		t.Fatalf("testenv: agent %s already started", n.Name)
	}
	cmd := exec.Command(n.bin, "--config-dir", n.ConfigDir, "agent", n.Cluster)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := start(cmd); err != nil {
		t.Fatalf("testenv: start agent %s: %v", n.Name, err)
	}
	n.cmd, n.out, n.done = cmd, out, make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		n.mu.Lock()
		n.code = code
		n.mu.Unlock()
		close(done)
	}(n.done)
}

// Running reports whether the agent process runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Wait waits for the agent process to exit and returns its exit code.
func (n *Node) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		t.Fatalf("testenv: agent %s was never started", n.Name)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("testenv: agent %s still runs after %s; output:\n%s", n.Name, timeout, tail(n.Output(), 40))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cmd = nil
	return n.code
}

// Stop sends SIGTERM and waits for a clean exit (code 0).
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	n.signal(syscall.SIGTERM)
	if code := n.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("testenv: agent %s exited %d after SIGTERM; output:\n%s", n.Name, code, tail(n.Output(), 40))
	}
}

// Kill sends SIGKILL to the agent's process group.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.signal(syscall.SIGKILL)
	n.Wait(t, 30*time.Second)
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.cmd.Process != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, sig)
	}
}

// Output is everything the agent process printed (all its runs).
func (n *Node) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out == nil {
		return ""
	}
	return n.out.String()
}

// CLI runs `pgfm --config-dir DIR args...` for this node.
func (n *Node) CLI(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bin, append([]string{"--config-dir", n.ConfigDir}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("testenv: pgfm %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// StartAll starts the primary's agent (which creates the cluster), then
// every other node's, each allowed first with allow-node and joining
// through the primary, and waits until the cluster is healthy
// (WaitHealthy).
func (c *AgentCluster) StartAll(t testing.TB) {
	t.Helper()
	p := c.Primary()
	p.Start(t)
	p.WaitReady(t)
	for _, n := range c.Nodes[1:] {
		if out, errOut, code := p.CLI(t, "allow-node", c.Name, n.Host); code != 0 {
			t.Fatalf("testenv: allow-node %s: %d %s %s", n.Host, code, out, errOut)
		}
		n.WriteNodes(t, p)
		n.Start(t)
		n.WaitReady(t)
	}
	c.WaitHealthy(t)
}

// WaitReady waits until the node's agent answers node-status-json.
func (n *Node) WaitReady(t testing.TB) {
	t.Helper()
	WaitFor(t, 90*time.Second, "agent "+n.Name+" ready", func() (bool, error) {
		if !n.Running() {
			return false, GiveUp(fmt.Errorf("agent %s exited (code %d); output:\n%s", n.Name, n.ExitCode(), tail(n.Output(), 40)))
		}
		_, errOut, code := n.CLI(t, "node-status-json", n.Cluster)
		if code == 0 {
			return true, nil
		}
		return false, fmt.Errorf("node-status-json: %d %s", code, errOut)
	})
}

func (c *AgentCluster) cleanup() {
	for _, n := range c.Nodes {
		n.signal(syscall.SIGKILL)
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		if done != nil {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
		}
		// Agents are built with -race: a race they report fails the test.
		if out := n.Output(); strings.Contains(out, "WARNING: DATA RACE") {
			i := strings.Index(out, "WARNING: DATA RACE")
			c.t.Errorf("agent %s reported a data race:\n%s", n.Name, out[i:min(len(out), i+6000)])
		}
	}
	if c.t.Failed() {
		c.t.Logf("what the agents reported, in short:\n%s", Events(c.Nodes...))
		for _, n := range c.Nodes {
			c.t.Logf("agent %s output (tail):\n%s", n.Name, tail(n.Output(), 60))
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writers and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ExitCode is the agent's exit code once it has exited (0 before).
func (n *Node) ExitCode() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.code
}
