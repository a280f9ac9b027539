package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/etcdmember"
)

// StartEtcd runs a single-member embedded etcd, as an agent does, for the
// test and returns a client of it; both end with the test.
func StartEtcd(t testing.TB) *clientv3.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := l.Addr().String()
	l.Close()
	// Unix socket paths must stay under ~100 bytes: t.TempDir() is too long.
	dir, err := os.MkdirTemp("", "pgfm-etcd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := etcdmember.Start(etcdmember.Config{
		Name: "n1", DataDir: filepath.Join(dir, "etcd"), PeerURL: url.URL{Scheme: "http", Host: peer},
		ClientSocket: filepath.Join(dir, "s"), State: "new", InitialCluster: "n1=http://" + peer, Token: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
