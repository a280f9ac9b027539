package etcdmember

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/pki"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pgfm-em-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// testKey is the cluster key of every member these tests start.
var testKey = func() pki.ClusterKey {
	k, err := pki.NewClusterKey("test")
	if err != nil {
		panic(err)
	}
	return k
}()

func startMember(t *testing.T, name, peer, initial, state, token string) (*Member, *clientv3.Client) {
	t.Helper()
	dir := shortDir(t)
	creds, err := pki.FromClusterKey(testKey, netip.MustParseAddrPort(peer).Addr(), "test", dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Start(Config{
		Name: name, DataDir: dir + "/etcd", PeerURL: url.URL{Scheme: "https", Host: peer},
		ClientSocket: dir + "/etcd.sock", InitialCluster: initial, State: state, Token: token,
		PeerCAFile: creds.CAFile, PeerCertFile: creds.CertFile, PeerKeyFile: creds.KeyFile, LogLevel: os.Getenv("ETCD_LOG"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return m, cli
}

// TestBootstrapAndJoinAsLearner follows DESIGN.md §2's join recipe on real
// etcd: add as learner, start with "existing", promote once caught up.
func TestBootstrapAndJoinAsLearner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p1 := freeAddr(t)
	m1, c1 := startMember(t, "n1", p1, "n1=https://"+p1, "new", "tok")
	if err := m1.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	p2 := freeAddr(t)
	var add *clientv3.MemberAddResponse
	var err error
	for add == nil {
		add, err = c1.MemberAddAsLearner(ctx, []string{"https://" + p2})
		if err != nil && !strings.Contains(err.Error(), "unhealthy") {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	}
	var parts []string
	for _, mem := range add.Members {
		name := mem.Name
		if mem.ID == add.Member.ID {
			name = "n2"
		}
		parts = append(parts, fmt.Sprintf("%s=%s", name, mem.PeerURLs[0]))
	}
	m2, c2 := startMember(t, "n2", p2, strings.Join(parts, ","), "existing", "tok")
	for {
		_, err := c1.MemberPromote(ctx, add.Member.ID)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("promote: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := m2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.WaitVoter(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := c2.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("read on the joined member: %v %v", r, err)
	}
	if m2.IsLearner() {
		t.Fatal("joined member is still a learner after promotion")
	}
	if !HasData(m2.cfg.DataDir) {
		t.Fatal("HasData false for a running member's dir")
	}
}

func TestSocketPathTooLong(t *testing.T) {
	_, err := Start(Config{Name: "x", DataDir: t.TempDir(), ClientSocket: "/" + strings.Repeat("a", 120)})
	if err == nil || !strings.Contains(err.Error(), "shorter state.dir") {
		t.Fatalf("err = %v", err)
	}
}
