package testenv

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestMain(m *testing.M) {
	code := m.Run()
	CleanupEtcdBinary()
	os.Exit(code)
}

// get reads key linearizably within timeout.
func get(cli *clientv3.Client, key string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// put writes key within timeout.
func put(cli *clientv3.Client, key, val string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := cli.Put(ctx, key, val)
	return err
}

func TestEtcdClusterQuorum(t *testing.T) {
	c := StartEtcdCluster(t, EtcdClusterOptions{})
	if eps := c.Endpoints(); len(eps) != 3 || !strings.HasPrefix(eps[0], "http://127.") {
		t.Fatalf("endpoints %v", eps)
	}
	cli := c.Client(t)
	if err := put(cli, "/k", "v1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if v, err := get(cli, "/k", 5*time.Second); err != nil || v != "v1" {
		t.Fatalf("get: %q %v", v, err)
	}

	c.Kill(0)
	// The killed member may have led: allow an election. A write
	// proposed to a dead leader is lost and waits for its deadline, hence
	// the short one.
	WaitFor(t, 20*time.Second, "a write with one member down", func() (bool, error) {
		err := put(cli, "/k", "v2", time.Second)
		return err == nil, err
	})

	c.Kill(1)
	start := time.Now()
	v, err := get(cli, "/k", 2*time.Second)
	if err == nil {
		t.Fatalf("linearizable get without quorum succeeded: %q", v)
	}
	t.Logf("without quorum: %v", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("get without quorum took %s", d)
	}

	c.Start(t, 0)
	c.Start(t, 1)
	c.WaitServing(t)
	if v, err := get(cli, "/k", 5*time.Second); err != nil || v != "v2" {
		t.Fatalf("get after restart: %q %v", v, err)
	}

	// A frozen member is a silent one: the other two carry on.
	c.Freeze(2)
	WaitFor(t, 20*time.Second, "a write with one member frozen", func() (bool, error) {
		err := put(cli, "/k", "v3", time.Second)
		return err == nil, err
	})
	c.Thaw(2)
	c.Freeze(0) // left frozen: cleanup must kill it all the same
}

func TestEtcdClusterTLSAuth(t *testing.T) {
	c := StartEtcdCluster(t, EtcdClusterOptions{TLS: true, User: "pgfm", Password: "s3cret"})
	if !strings.HasPrefix(c.Endpoints()[0], "https://") {
		t.Fatalf("endpoints %v", c.Endpoints())
	}
	root := c.Client(t)
	if err := put(root, "/other", "root", 5*time.Second); err != nil {
		t.Fatalf("root put: %v", err)
	}

	newClient := func(t *testing.T, cfg clientv3.Config) (*clientv3.Client, error) {
		cfg.DialTimeout = 2 * time.Second
		cli, err := clientv3.New(cfg)
		if err == nil {
			t.Cleanup(func() { cli.Close() })
		}
		return cli, err
	}

	t.Run("no client certificate", func(t *testing.T) {
		cfg := c.ClientConfig()
		cfg.TLS.Certificates = nil
		cli, err := newClient(t, cfg) // authenticates: needs a handshake
		if err == nil {
			_, err = get(cli, "/other", 2*time.Second)
		}
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
		t.Logf("without a certificate: %v", err)
	})

	t.Run("certificate alone", func(t *testing.T) {
		cfg := c.ClientConfig()
		cfg.Username, cfg.Password = "", ""
		cli, err := newClient(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = get(cli, "/other", 2*time.Second)
		if err == nil {
			t.Fatal("the client certificate alone was let read")
		}
		t.Logf("certificate alone: %v", err)
	})

	t.Run("user limited to prefix", func(t *testing.T) {
		cfg := c.ClientConfig()
		cfg.Username, cfg.Password = "pgfm", "s3cret"
		cli, err := newClient(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := put(cli, EtcdUserPrefix+"x", "1", 5*time.Second); err != nil {
			t.Fatalf("put under %s: %v", EtcdUserPrefix, err)
		}
		err = put(cli, "/other", "pgfm", 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("put /other: want permission denied, got %v", err)
		}
		// Just past the prefix's range end.
		if err := put(cli, "/pgfm0", "1", 5*time.Second); err == nil {
			t.Fatal("put /pgfm0 allowed")
		}
	})

	t.Run("through a proxy on a member's host", func(t *testing.T) {
		host, _, _ := net.SplitHostPort(c.ClientAddr(0))
		p := NewProxy(t, host, c.ClientAddr(0))
		cli, err := newClient(t, c.ClientConfig("https://"+p.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := get(cli, "/other", 5*time.Second); err != nil || v != "root" {
			t.Fatalf("get through proxy: %q %v", v, err)
		}
	})
}
