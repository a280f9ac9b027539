package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv/netns"
)

// Ports every namespaced node uses: each host has its own network stack,
// so they are the same everywhere, as in production.
const (
	NetDBPort    = 5432
	NetBindPort  = 7800
	NetAdminPort = 7809
)

// NetOptions shapes a cluster on a namespaced network.
type NetOptions struct {
	Name      string // cluster name; default "prod"
	Standbys  int
	Witnesses int
	// IPv6Only puts the agents, databases and virtual IP on the hosts'
	// fd00:198:18::/64 addresses only (the hosts keep their IPv4 address,
	// which nothing of the cluster uses).
	IPv6Only bool
	// Props are extra properties for every node (they may override the
	// harness's, the virtual IP's included).
	Props map[string]string
}

// NetCluster is PostgreSQL and pgfm agents, each node on its own host (a
// network namespace) of a netns.Network, with a virtual IP and a client
// host to reach them from.
type NetCluster struct {
	Name  string
	Net   *netns.Network
	Nodes []*NetNode // primary, standbys, then witnesses
	// VIP is the cluster's virtual IP (virtual.ip), on eth0 with VIPPrefix.
	VIP       netip.Addr
	VIPPrefix int
	DBPort    int
	BinDir    string
	t         testing.TB
}

// NetNode is one node: the agent (a Node whose Start, CLI and SQL run in
// its host's namespace) and, unless a witness, its PostgreSQL server.
type NetNode struct {
	*Node
	NetHost *netns.Host
	Addr    netip.Addr // the address everything of this node uses
}

// NewNetCluster creates the network (first, so that its removal, which
// kills anything left in the namespaces, runs last), PostgreSQL (a primary
// and opts.Standbys streaming standbys, each started inside its host's
// namespace) and every node's cluster files; no agent runs yet.
func NewNetCluster(t testing.TB, opts NetOptions) *NetCluster {
	t.Helper()
	netns.Require(t)
	bin := RequirePostgres(t)
	if opts.Name == "" {
		opts.Name = "prod"
	}
	size := 1 + opts.Standbys + opts.Witnesses
	nw := netns.New(t, netns.Options{Hosts: size, IPv6: opts.IPv6Only})
	c := &NetCluster{Name: opts.Name, Net: nw, DBPort: NetDBPort, BinDir: bin, t: t, VIPPrefix: 24}
	v4, v6 := nw.FreeAddr(0)
	c.VIP = v4
	if opts.IPv6Only {
		c.VIP, c.VIPPrefix = v6, 64
	}
	base := TempDir(t)
	own := owner(t)
	hosts := nw.Hosts()[:size]
	var pgs []*PGNode
	for i := 0; i < 1+opts.Standbys; i++ {
		a := c.hostAddr(hosts[i], opts.IPv6Only)
		pgs = append(pgs, newNode(t, base, fmt.Sprintf("node%d", i), a.String(), NetDBPort, bin, own))
	}
	// Registered before anything starts, so that a half-built cluster is
	// stopped too; agents' cleanup, registered later, runs before it.
	pgc := &PGCluster{BinDir: bin, Port: NetDBPort, Nodes: pgs}
	t.Cleanup(func() { pgc.cleanup(t) })

	ac := &AgentCluster{Name: opts.Name, PG: pgc, bin: Binary(t), base: base, t: t}
	for i, h := range hosts {
		a := c.hostAddr(h, opts.IPv6Only)
		var pgn *PGNode
		name := fmt.Sprintf("witness%d", i-len(pgs)+1)
		if i < len(pgs) {
			pgn, name = pgs[i], pgs[i].Name
		}
		n := ac.newNode(name, opts.Name, a.String(), NetBindPort, NetAdminPort, pgn)
		n.dbPort = NetDBPort
		nn := &NetNode{Node: n, NetHost: h, Addr: a}
		c.Nodes = append(c.Nodes, nn)
		ac.Nodes = append(ac.Nodes, n)
		nn.WriteProperties(t, c.props(opts.Props))
	}
	t.Cleanup(ac.cleanup) // kills the agents, first of all

	if err := c.initPrimary(); err != nil {
		t.Fatalf("testenv: primary: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes[1 : 1+opts.Standbys] {
		wg.Go(func() {
			if err := c.initStandby(n); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testenv: standbys: %v", err)
	}
	c.waitStreaming(t)
	return c
}

func (c *NetCluster) hostAddr(h *netns.Host, v6 bool) netip.Addr {
	if v6 {
		return h.IPv6
	}
	return h.IPv4
}

// props are the virtual IP's settings, then extra.
func (c *NetCluster) props(extra map[string]string) map[string]string {
	p := map[string]string{
		"virtual.ip":           c.VIP.String(),
		"virtual.ip.interface": "eth0",
		"virtual.ip.prefix":    strconv.Itoa(c.VIPPrefix),
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// Primary is the node created as primary.
func (c *NetCluster) Primary() *NetNode { return c.Nodes[0] }

// DBNodes are the nodes with a database, the primary first.
func (c *NetCluster) DBNodes() []*NetNode {
	var out []*NetNode
	for _, n := range c.Nodes {
		if n.PG != nil {
			out = append(out, n)
		}
	}
	return out
}

// Witnesses are the nodes without a database.
func (c *NetCluster) Witnesses() []*NetNode {
	var out []*NetNode
	for _, n := range c.Nodes {
		if n.PG == nil {
			out = append(out, n)
		}
	}
	return out
}

// ByAddr finds the node whose address is addr (as cluster-status names it).
func (c *NetCluster) ByAddr(addr string) *NetNode {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	for _, n := range c.Nodes {
		if n.Addr == a {
			return n
		}
	}
	return nil
}

// netNodeConf is where a namespaced server listens, and its name: the
// writer reads cluster_name back to learn which server took a write (all
// take them through the same virtual IP). It listens on every address of
// its host ('*'): the virtual IP comes and goes while it runs, and a server
// only bound to the host's own address would not answer on it.
func netNodeConf(n *PGNode) []string {
	return []string{
		"listen_addresses = '*'",
		fmt.Sprintf("port = %d", n.Port),
		"unix_socket_directories = " + confQuote(n.SocketDir),
		"cluster_name = " + confQuote(n.Host),
	}
}

// netHBA trusts loopback and the test network, normal and replication.
const netHBA = `# pgfm netns test harness: trust loopback and the test network
local all         all                    trust
local replication all                    trust
host  all         all   127.0.0.0/8      trust
host  all         all   ::1/128          trust
host  all         all   198.18.0.0/15    trust
host  all         all   fd00::/8         trust
host  replication all   127.0.0.0/8      trust
host  replication all   ::1/128          trust
host  replication all   198.18.0.0/15    trust
host  replication all   fd00::/8         trust
`

func (c *NetCluster) initPrimary() error {
	n := c.Primary()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, err := n.PG.run(ctx, "initdb", "-D", n.PG.DataDir, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return err
	}
	if err := appendConf(filepath.Join(n.PG.DataDir, "postgresql.conf"), slices.Concat(baseConf, netNodeConf(n.PG))); err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(n.PG.DataDir, "pg_hba.conf"), netHBA); err != nil {
		return err
	}
	return n.StartDB()
}

// initStandby clones the primary from inside the standby's namespace.
func (c *NetCluster) initStandby(n *NetNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	p := c.Primary().PG
	src := postgres.ConnString(p.Host, p.Port, "postgres", "", "disable", connectTimeout) + " application_name='" + n.PG.Name + "'"
	if _, err := n.RunPG(ctx, "pg_basebackup", "-D", n.PG.DataDir, "-d", src, "-R",
		"-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		return err
	}
	if err := appendConf(filepath.Join(n.PG.DataDir, "postgresql.conf"), netNodeConf(n.PG)); err != nil {
		return err
	}
	return n.StartDB()
}

func (c *NetCluster) waitStreaming(t testing.TB) {
	t.Helper()
	var names []string
	for _, n := range c.DBNodes()[1:] {
		names = append(names, n.PG.Name)
	}
	if len(names) == 0 {
		return
	}
	WaitFor(t, streamTimeout, "standbys streaming", func() (bool, error) {
		var streaming int
		err := c.Primary().queryRowArgs(`SELECT count(*) FROM pg_stat_replication
			WHERE state = 'streaming' AND application_name = ANY($1)`, []any{names}, &streaming)
		if err == nil && streaming != len(names) {
			err = fmt.Errorf("%d of %d standbys streaming", streaming, len(names))
		}
		return err == nil, err
	})
}

// RunPG runs a PostgreSQL program as the database's owner inside the
// node's namespace.
func (n *NetNode) RunPG(ctx context.Context, program string, args ...string) (string, error) {
	cmd, err := postgres.Command(ctx, n.PG.BinDir, n.PG.Owner, program, args...)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := n.NetHost.Start(cmd); err != nil {
		return "", fmt.Errorf("%s: %w", program, err)
	}
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", program, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// StartDB starts the node's server inside its namespace (pg_ctl start -w).
func (n *NetNode) StartDB() error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_, err := n.RunPG(ctx, "pg_ctl", "start", "-D", n.PG.DataDir, "-l", n.PG.LogFile, "-w", "-t", pgCtlWaitSecs)
	if pid := n.PG.postmasterPID(); pid > 0 {
		n.PG.mu.Lock()
		n.PG.pids = append(n.PG.pids, pid)
		n.PG.mu.Unlock()
	}
	return err
}

// socketConnString reaches the node's server through its Unix socket: a
// path on the shared file system, so the test process needs no route into
// the namespace (and an isolated node is still reachable this way).
func (n *NetNode) socketConnString() string {
	return postgres.ConnString(n.PG.SocketDir, n.PG.Port, "postgres", "postgres", "disable", connectTimeout)
}

func (n *NetNode) queryRowArgs(sql string, args []any, dest ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.socketConnString())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// TryQueryRow scans sql's single row into dest (through the Unix socket).
func (n *NetNode) TryQueryRow(sql string, dest ...any) error {
	return n.queryRowArgs(sql, nil, dest...)
}

// QueryRow is TryQueryRow failing the test on error.
func (n *NetNode) QueryRow(t testing.TB, sql string, dest ...any) {
	t.Helper()
	if err := n.TryQueryRow(sql, dest...); err != nil {
		t.Fatalf("testenv: %s: query %q: %v", n.Name, sql, err)
	}
}

// Exec runs sql (through the Unix socket), failing the test on error.
func (n *NetNode) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.socketConnString())
	if err == nil {
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
	}
	if err != nil {
		t.Fatalf("testenv: %s: exec %q: %v", n.Name, sql, err)
	}
}

// Start launches the agent inside the node's namespace.
func (n *NetNode) Start(t testing.TB) {
	t.Helper()
	n.startWith(t, n.NetHost.Start)
}

// CLI runs `pgfm --config-dir DIR args...` inside the node's namespace.
func (n *NetNode) CLI(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := n.NetHost.Command(ctx, n.bin, append([]string{"--config-dir", n.ConfigDir}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("testenv: pgfm %v on %s: %v", args, n.Name, err)
	}
	return o.String(), e.String(), code
}

// WaitReady waits until the node's agent answers node-status-json.
func (n *NetNode) WaitReady(t testing.TB) {
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

// StartAll starts the primary's agent, then every other node's, each
// allowed first and joining through the primary, and waits until
// cluster-status on the last node shows every node.
func (c *NetCluster) StartAll(t testing.TB) {
	t.Helper()
	p := c.Primary()
	p.Start(t)
	p.WaitReady(t)
	for _, n := range c.Nodes[1:] {
		if out, errOut, code := p.CLI(t, "allow-node", c.Name, n.Host); code != 0 {
			t.Fatalf("testenv: allow-node %s: %d %s %s", n.Host, code, out, errOut)
		}
		n.WriteNodes(t, p.Node)
		n.Start(t)
		n.WaitReady(t)
	}
	last := c.Nodes[len(c.Nodes)-1]
	nodes := make([]*Node, len(c.Nodes))
	for i, n := range c.Nodes {
		nodes[i] = n.Node
	}
	waitFormed(t, nodes, func() (Status, int, error) { return last.Status(t) })
}

// Status is cluster-status-json as a script reads it.
type Status struct {
	Nodes map[string]struct {
		Type      string `json:"type"`
		Agent     string `json:"agent"`
		DB        string `json:"db"`
		VIP       string `json:"vip"`
		VIPActive bool   `json:"vip_active"`
	} `json:"nodes"`
	MissingNodes []string `json:"missingnodes"`
	Messages     []string `json:"messages"`
	Epoch        uint64   `json:"epoch"`
	Primary      string   `json:"primary"`
	PrimaryPhase string   `json:"primaryPhase"`
	// Synchronous replication: the recorded set.
	SynchronousStandbys []string `json:"synchronousStandbys"`
	SynchronousQuorum   int      `json:"synchronousQuorum"`
}

// Status runs cluster-status-json on the node (inside its namespace).
func (n *NetNode) Status(t testing.TB) (Status, int, error) {
	t.Helper()
	out, errOut, code := n.CLI(t, "cluster-status-json", n.Cluster)
	return parseStatus(n.Name, out, errOut, code)
}

// WaitStatus polls cluster-status-json on the node until cond holds.
func (n *NetNode) WaitStatus(t testing.TB, timeout time.Duration, what string, cond func(Status, int) error) Status {
	t.Helper()
	var last Status
	WaitFor(t, timeout, what, func() (bool, error) {
		st, code, err := n.Status(t)
		if err != nil {
			return false, err
		}
		last = st
		return true, cond(st, code)
	})
	return last
}

// HoldsVIP reports whether the node's eth0 carries the cluster's virtual IP.
func (c *NetCluster) HoldsVIP(t testing.TB, n *NetNode) bool {
	t.Helper()
	out := n.NetHost.Run(t, "ip", "-o", "addr", "show", "dev", n.NetHost.Iface)
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr() == c.VIP {
			return true
		}
	}
	return false
}

// VIPHolders lists the nodes whose eth0 carries the virtual IP.
func (c *NetCluster) VIPHolders(t testing.TB) []*NetNode {
	t.Helper()
	var out []*NetNode
	for _, n := range c.Nodes {
		if c.HoldsVIP(t, n) {
			out = append(out, n)
		}
	}
	return out
}

// StartVIPWriter creates table pgfm_writes on the primary and starts a
// Writer that connects from the client host to the virtual IP only
// (target_session_attrs=read-write), reconnecting after errors. A Write's
// Server is the cluster_name, i.e. the address, of the server that took it.
func (c *NetCluster) StartVIPWriter(t testing.TB) *Writer {
	t.Helper()
	c.Primary().Exec(t, "CREATE TABLE IF NOT EXISTS pgfm_writes(id int PRIMARY KEY, at timestamptz DEFAULT now())")
	cfg, err := pgx.ParseConfig(postgres.ConnString(c.VIP.String(), c.DBPort, "postgres", "postgres", "disable", time.Second) +
		" target_session_attrs=read-write")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = c.Net.Client().DialContext
	w := &Writer{Interval: 10 * time.Millisecond, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	// Every write arrives through the virtual IP: cluster_name (the node's
	// address) tells the servers apart.
	go w.run(ctx, cfg, "current_setting('cluster_name')")
	t.Cleanup(w.Stop)
	return w
}

// WriteIDs is every id in pgfm_writes on the node's database.
func (n *NetNode) WriteIDs() ([]int32, error) {
	var ids []int32
	err := n.TryQueryRow("SELECT coalesce(array_agg(id), '{}') FROM pgfm_writes", &ids)
	return ids, err
}

// DBRunning reports whether pg_ctl status sees the node's server running
// (it reads postmaster.pid and signals the pid: no network needed).
func (n *NetNode) DBRunning(t testing.TB) bool {
	t.Helper()
	return n.PG.Running(t)
}

// InRecovery reports whether the node's server runs in recovery; an error
// when it cannot be asked.
func (n *NetNode) InRecovery() (bool, error) {
	var rec bool
	err := n.TryQueryRow("SELECT pg_is_in_recovery()", &rec)
	return rec, err
}

// LogFileTail is the end of the node's server log.
func (n *NetNode) LogFileTail(lines int) string {
	if n.PG == nil {
		return ""
	}
	b, _ := os.ReadFile(n.PG.LogFile)
	return tail(string(b), lines)
}
