package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/pki"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// credsFor issues a node certificate for 127.0.0.1 from a new cluster key.
func credsFor(t *testing.T, cluster string) *pki.Credentials {
	t.Helper()
	k, err := pki.NewClusterKey(cluster)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.FromClusterKey(k, loopback, cluster, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newSecureServer serves f as the agent does: one port, plain for load
// balancers, TLS for the rest, at most maxConns connections.
func newSecureServer(t *testing.T, f Backend, maxConns int) (url string, creds *pki.Credentials) {
	t.Helper()
	creds = credsFor(t, "main")
	var h pki.Holder
	h.Set(creds)
	s := NewServer(f, token, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.UseTLS(&h, maxConns)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Close)
	return URL("127.0.0.1", l.Addr().(*net.TCPAddr).Port), creds
}

func tlsGet(t *testing.T, url string, conf *tls.Config) (int, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
	resp, err := c.Get(strings.Replace(url, "http://", "https://", 1))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestPlainHTTPServesOnlyHealthChecks(t *testing.T) {
	f := &fakeBackend{health: Health{Type: cluster.Primary, DBUp: true, HoldsLease: true, Primary: true}}
	url, _ := newSecureServer(t, f, 8)
	for _, p := range []string{"/health", "/primary", "/standby", "/sync", "/synchronous"} {
		if code := get(t, url+p); code == http.StatusForbidden {
			t.Errorf("plain GET %s = 403; load balancers must reach it", p)
		}
	}
	for _, p := range []string{"/v1/cluster", "/v1/node", "/v1/replication", "/nope"} {
		if code := get(t, url+p); code != http.StatusForbidden {
			t.Errorf("plain GET %s = %d, want 403", p, code)
		}
	}
	if code, body := post(t, url+"/v1/join", "", `{"cluster":"main","address":"127.0.0.1","bindAddress":"127.0.0.1:7800"}`); code != http.StatusForbidden || !strings.Contains(body, "needs TLS") {
		t.Errorf("plain join = %d %s, want 403 saying TLS is needed", code, body)
	}
	if f.joinFrom != "" {
		t.Errorf("a plain join reached the backend (from %q)", f.joinFrom)
	}
}

func TestTLSNeedsACertificateOfTheCluster(t *testing.T) {
	f := &fakeBackend{}
	url, creds := newSecureServer(t, f, 8)
	// Trusting the server but presenting no certificate: served, refused.
	noCert := &tls.Config{RootCAs: creds.CA}
	if code, err := tlsGet(t, url+"/v1/cluster", noCert); err != nil || code != http.StatusForbidden {
		t.Errorf("TLS without a certificate: %d %v, want 403", code, err)
	}
	// A certificate of another cluster's key: the handshake fails.
	other := credsFor(t, "main").ClientConfig()
	other.RootCAs = creds.CA
	if code, err := tlsGet(t, url+"/v1/cluster", other); err == nil {
		t.Errorf("a certificate of another cluster key was served: %d", code)
	}
	// The server is not trusted by a client of another cluster key.
	if _, err := tlsGet(t, url+"/v1/cluster", credsFor(t, "main").ClientConfig()); err == nil {
		t.Error("a client trusting another cluster key accepted this server")
	}
	if code, err := tlsGet(t, url+"/v1/cluster", creds.ClientConfig()); err != nil || code != http.StatusOK {
		t.Errorf("TLS with the cluster's certificate: %d %v, want 200", code, err)
	}
}

func TestJoinNeedsACertificateNamingTheAddress(t *testing.T) {
	f := &fakeBackend{}
	url, creds := newSecureServer(t, f, 8)
	c := NewClient(url, "", "127.0.0.1", 5*time.Second).WithTLS(creds.ClientConfig())
	_, err := c.Join(context.Background(), JoinRequest{Cluster: "main", Address: "127.0.0.2", BindAddress: "127.0.0.2:7800"})
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusForbidden || !strings.Contains(he.Msg, "does not name that address") {
		t.Fatalf("join for another address = %v, want 403", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.joinFrom != "" {
		t.Errorf("a join whose certificate names another address reached the backend")
	}
}

// Garbage on the port, and more connections from one address than it
// may hold, change nothing for the next client.
func TestGarbageAndConnectionCap(t *testing.T) {
	f := &fakeBackend{health: Health{Type: cluster.Primary, DBUp: true, HoldsLease: true, Primary: true}}
	url, creds := newSecureServer(t, f, 8) // 4 per address
	addr := strings.TrimPrefix(url, "http://")
	for _, junk := range []string{"\x16\x03\x01\x00\x05garbage", "\x00\x00\x00\x04abcd", "GET / HTTP/9.9\r\n\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(junk))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.ReadAll(c)
		c.Close()
	}
	var idle []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = extra.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("a fifth connection from one address was kept (read: %v), want it closed", err)
	}
	extra.Close()
	for _, c := range idle {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, err := tlsGet(t, url+"/v1/cluster", creds.ClientConfig())
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after garbage and the cap: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := get(t, url+"/health"); code != http.StatusOK {
		t.Errorf("plain /health after garbage = %d", code)
	}
}
