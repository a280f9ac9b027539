package testenv

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// echoServer echoes every connection on host until the test ends.
func echoServer(t *testing.T, host string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(FreePort(t, host))))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// echo writes msg on c and reads the answer within d.
func echo(c net.Conn, msg string, d time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func dial(t *testing.T, addr string) net.Conn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// silence is how long a cut connection must stay quiet: absence cannot
// be awaited, only bounded.
const silence = 300 * time.Millisecond

func TestProxyCutRestore(t *testing.T) {
	host := Hosts(t, 1)[0]
	p := NewProxy(t, host, echoServer(t, host))
	old := dial(t, p.Addr())
	if got, err := echo(old, "a", 5*time.Second); err != nil || got != "a" {
		t.Fatalf("echo through proxy: %q %v", got, err)
	}

	p.Cut()
	// Neither answered nor closed: the read times out.
	if _, err := echo(old, "b", silence); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("old connection after Cut: want a timeout, got %v", err)
	}
	during := dial(t, p.Addr()) // accepted...
	if _, err := echo(during, "c", silence); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection during Cut: want a timeout, got %v", err)
	}

	p.Restore()
	// ...and closed by Restore, like the old one.
	for _, c := range []net.Conn{old, during} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("held connection after Restore: want it closed, got %v", err)
		}
	}
	if got, err := echo(dial(t, p.Addr()), "d", 5*time.Second); err != nil || got != "d" {
		t.Fatalf("echo after Restore: %q %v", got, err)
	}

	// Close ends every goroutine (it waits for them), even with a link open.
	dial(t, p.Addr())
	p.Cut()
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	p.Close()
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("proxy still accepts after Close")
	}
}

func TestProxyEtcd(t *testing.T) {
	c := StartEtcdCluster(t, EtcdClusterOptions{Members: 1})
	p := NewProxy(t, Hosts(t, 1)[0], c.ClientAddr(0))
	newClient := func() *clientv3.Client {
		cli, err := clientv3.New(c.ClientConfig("http://" + p.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	via := newClient()
	if err := put(via, "/k", "v", 5*time.Second); err != nil {
		t.Fatalf("put through proxy: %v", err)
	}

	p.Cut()
	if _, err := get(via, "/k", time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get through a cut proxy: want a deadline error, got %v", err)
	}
	if v, err := get(c.Client(t), "/k", 5*time.Second); err != nil || v != "v" {
		t.Fatalf("direct get: %q %v", v, err)
	}

	p.Restore()
	if v, err := get(newClient(), "/k", 5*time.Second); err != nil || v != "v" {
		t.Fatalf("get through restored proxy: %q %v", v, err)
	}
}
