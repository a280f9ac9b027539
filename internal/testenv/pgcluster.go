package testenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// PGOptions shapes a test cluster.
type PGOptions struct {
	// Standbys is how many streaming standbys follow the primary.
	Standbys int
	// Port every node listens on (each on its own host); 0 picks a free one.
	Port int
	// Hosts are the nodes' loopback addresses, the primary's first;
	// len must be 1+Standbys. Nil picks fresh ones with Hosts.
	Hosts []string
	// ExtraConf lines are appended to every node's postgresql.conf.
	ExtraConf []string
	// Encoding is the server encoding initdb gives the cluster (with the C
	// locale); default UTF8.
	Encoding string
}

// PGCluster is a primary and its standbys, stopped and removed when the test
// ends.
type PGCluster struct {
	BinDir string
	Port   int
	// Nodes[0] is the primary as created; tests that fail over may change
	// which node really is.
	Nodes []*PGNode
}

// streamTimeout bounds the wait for every standby to stream after start.
const streamTimeout = 60 * time.Second

// NewPGCluster creates, starts and waits for a primary with opts.Standbys
// standbys streaming from it (each standby's application_name is its name).
func NewPGCluster(t testing.TB, opts PGOptions) *PGCluster {
	t.Helper()
	bin := RequirePostgres(t)
	hosts := opts.Hosts
	if hosts == nil {
		hosts = Hosts(t, 1+opts.Standbys)
	}
	if len(hosts) != 1+opts.Standbys {
		t.Fatalf("testenv: %d hosts for a primary and %d standbys", len(hosts), opts.Standbys)
	}
	port := opts.Port
	if port == 0 {
		port = FreePort(t, hosts...)
	}
	base := TempDir(t)
	c := &PGCluster{BinDir: bin, Port: port}
	// Registered before anything starts, so a half-built cluster is cleaned
	// up too; TempDir's removal, registered earlier, runs after it.
	t.Cleanup(func() { c.cleanup(t) })
	own := owner(t)
	for i, h := range hosts {
		c.Nodes = append(c.Nodes, newNode(t, base, fmt.Sprintf("node%d", i), h, port, bin, own))
	}
	if err := c.Primary().initPrimary(opts.ExtraConf, cmp.Or(opts.Encoding, "UTF8")); err != nil {
		t.Fatalf("testenv: primary: %v", err)
	}
	if err := c.addStandbys(); err != nil {
		t.Fatalf("testenv: standbys: %v", err)
	}
	c.waitStreaming(t)
	return c
}

// Primary is the node created as primary.
func (c *PGCluster) Primary() *PGNode { return c.Nodes[0] }

// Standbys are the nodes created as standbys.
func (c *PGCluster) Standbys() []*PGNode { return c.Nodes[1:] }

// addStandbys clones the primary into every standby at once: each clone is
// mostly waiting on the primary's checkpoint and the server's start.
func (c *PGCluster) addStandbys() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.Standbys()))
	for i, n := range c.Standbys() {
		wg.Go(func() {
			if err := n.initStandby(c.Primary()); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitStreaming waits until the primary sees every standby streaming.
func (c *PGCluster) waitStreaming(t testing.TB) {
	t.Helper()
	var names []string
	for _, n := range c.Standbys() {
		names = append(names, n.Name)
	}
	if len(names) == 0 {
		return
	}
	WaitFor(t, streamTimeout, "standbys streaming", func() (bool, error) {
		var streaming int
		err := c.Primary().queryRow(`SELECT count(*) FROM pg_stat_replication
			WHERE state = 'streaming' AND application_name = ANY($1)`, []any{names}, &streaming)
		if err == nil && streaming != len(names) {
			err = fmt.Errorf("%d of %d standbys streaming", streaming, len(names))
		}
		return err == nil, err
	})
}

// cleanup stops every node, standbys first, and prints their logs' tails if
// the test failed. Shutdown is immediate: the data is thrown away.
func (c *PGCluster) cleanup(t testing.TB) {
	if t.Failed() {
		c.logTails(t)
	}
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		c.Nodes[i].shutdown(t)
	}
}

// newNode lays out a node's directory, owned by the PostgreSQL user so that
// initdb, pg_basebackup and the server can write there.
func newNode(t testing.TB, base, name, host string, port int, bin, own string) *PGNode {
	t.Helper()
	dir := filepath.Join(base, name)
	n := &PGNode{
		Name:      name,
		Host:      host,
		Port:      port,
		DataDir:   filepath.Join(dir, "data"),
		SocketDir: filepath.Join(dir, "sock"),
		LogFile:   filepath.Join(dir, "postgres.log"),
		BinDir:    bin,
		Owner:     own,
	}
	for _, d := range []string{dir, n.SocketDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		chownToOwner(t, d)
	}
	return n
}

// initPrimary creates and starts the primary.
func (n *PGNode) initPrimary(extra []string, encoding string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if _, err := n.run(ctx, "initdb", "-D", n.DataDir, "-U", "postgres", "--auth=trust",
		"-E", encoding, "--locale=C", "--no-sync"); err != nil {
		return err
	}
	conf := slices.Concat(baseConf, extra, nodeConf(n))
	if err := appendConf(filepath.Join(n.DataDir, "postgresql.conf"), conf); err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(n.DataDir, "pg_hba.conf"), hbaConf); err != nil {
		return err
	}
	return n.start()
}

// initStandby clones the primary with pg_basebackup -R (which writes
// standby.signal and primary_conninfo, application_name included), moves
// the copy to its own address and socket, and starts it.
func (n *PGNode) initStandby(primary *PGNode) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	src := primary.replicationConnString(n.Name)
	if _, err := n.run(ctx, "pg_basebackup", "-D", n.DataDir, "-d", src, "-R",
		"-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		return err
	}
	// The copied postgresql.conf carries the primary's base and extra
	// settings; only where to listen differs.
	if err := appendConf(filepath.Join(n.DataDir, "postgresql.conf"), nodeConf(n)); err != nil {
		return err
	}
	return n.start()
}
