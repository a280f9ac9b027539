package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/pki"
	"github.com/pgfm/pgfm/internal/testenv"
	"github.com/pgfm/pgfm/internal/version"
)

// TestAttacksChangeNothing plays the attacks of the security issue against
// a running cluster (a primary, a standby, a witness): strangers on the
// etcd peer port and on admin.port, a node with the wrong cluster key, a
// join in a live member's name, a connection flood. Nothing may be
// admitted, changed or crashed, and a failover must still work afterwards.
func TestAttacksChangeNothing(t *testing.T) {
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Witnesses: 1})
	c.StartAll(t)
	primary, standby, witness := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	members := c.Nodes[:3]

	// The etcd membership every step must leave as it is: three started
	// voters (a learner's promotion may still be under way right after
	// StartAll).
	var before []etcdMember
	testenv.WaitFor(t, 30*time.Second, "three started voting etcd members", func() (bool, error) {
		ms, err := etcdMembers(primary)
		if err != nil {
			return false, err
		}
		before = ms
		started := slices.IndexFunc(ms, func(m etcdMember) bool { return m.Learner || m.Name == "" }) < 0
		return check(len(ms) == 3 && started, "etcd members %v", ms)
	})
	unchanged := func(t *testing.T) {
		t.Helper()
		for _, n := range members {
			if !n.Running() {
				t.Fatalf("agent %s exited (code %d):\n%s", n.Name, n.ExitCode(), tailOf(n.Output()))
			}
			if out := n.Output(); strings.Contains(out, "panic:") {
				t.Fatalf("agent %s panicked:\n%s", n.Name, tailOf(out))
			}
		}
		ms, err := etcdMembers(primary)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ms, before) {
			t.Fatalf("etcd members changed:\nbefore %v\nafter  %v", before, ms)
		}
	}

	// Credentials of another cluster key, for a certificate naming the
	// standby's address: everything but the secret.
	otherKey, err := pki.NewClusterKey(c.Name)
	if err != nil {
		t.Fatal(err)
	}
	otherCreds, err := pki.FromClusterKey(otherKey, netip.MustParseAddr(standby.Host), c.Name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The client side trusts anything: only the server's check is tested.
	foreignTLS := &tls.Config{Certificates: []tls.Certificate{otherCreds.Cert}, InsecureSkipVerify: true}
	noCertTLS := &tls.Config{InsecureSkipVerify: true}

	t.Run("the etcd peer port admits no stranger", func(t *testing.T) {
		for _, n := range members {
			plain := "http://" + n.Bind()
			secure := "https://" + n.Bind()
			for _, r := range []struct{ method, path, body string }{
				{"POST", "/raft", "\x08\x01\x10\xff\xff\xff\xff\x0fnot a raft message"},
				{"GET", "/members", ""},
			} {
				// Plain HTTP: a 400 from the TLS server or no answer.
				if code, msg := request(t, httpClient(nil, ""), r.method, plain+r.path, r.body); code/100 == 2 {
					t.Errorf("%s: plain %s %s answered %d: %s", n.Name, r.method, r.path, code, msg)
				}
				// TLS with a certificate of another cluster key, and with
				// none: the handshake is refused, there is no answer.
				for _, tc := range []struct {
					what string
					conf *tls.Config
				}{{"another cluster key's certificate", foreignTLS}, {"no certificate", noCertTLS}} {
					code, msg := request(t, httpClient(tc.conf, ""), r.method, secure+r.path, r.body)
					if code != 0 {
						t.Errorf("%s: TLS with %s: %s %s answered %d (want a refused handshake): %s", n.Name, tc.what, r.method, r.path, code, msg)
					} else {
						t.Logf("%s: TLS with %s: %s %s: %s", n.Name, tc.what, r.method, r.path, msg)
					}
				}
			}
			for _, g := range garbage() {
				sendGarbage(t, n.Bind(), g)
			}
		}
		unchanged(t)
	})

	t.Run("admin.port serves strangers only health checks", func(t *testing.T) {
		admin := func(n *testenv.Node, scheme string) string {
			return scheme + "://" + net.JoinHostPort(n.Host, strconv.Itoa(n.AdminPort))
		}
		join := fmt.Sprintf(`{"cluster":%q,"address":%q,"bind_address":%q,"version":%q,"witness":true}`,
			c.Name, standby.Host, standby.Bind(), version.Version)
		ops := []struct{ method, path, body string }{
			{"GET", "/v1/cluster", ""},
			{"GET", "/v1/node", ""},
			{"POST", "/v1/join", join},
			{"POST", "/v1/allow", `{"address":"127.0.0.9"}`},
			{"POST", "/v1/disallow", fmt.Sprintf(`{"address":%q}`, standby.Host)},
			{"POST", "/v1/promote", "{}"},
			{"POST", "/v1/maintenance", `{"on":true}`},
			{"POST", "/v1/reset-members", ""},
			{"POST", "/v1/stop-cluster", ""},
		}
		for _, n := range members {
			for _, op := range ops {
				for _, tc := range []struct {
					what, scheme string
					conf         *tls.Config
				}{{"plain HTTP", "http", nil}, {"TLS without a certificate", "https", noCertTLS}} {
					code, msg := request(t, httpClient(tc.conf, ""), op.method, admin(n, tc.scheme)+op.path, op.body)
					if code != http.StatusForbidden || !strings.Contains(msg, "needs TLS") {
						t.Errorf("%s: %s %s over %s answered %d %q, want 403 needs TLS", n.Name, op.method, op.path, tc.what, code, msg)
					}
				}
				code, msg := request(t, httpClient(foreignTLS, ""), op.method, admin(n, "https")+op.path, op.body)
				if code != 0 {
					t.Errorf("%s: %s %s with another cluster key's certificate answered %d (want a refused handshake): %s", n.Name, op.method, op.path, code, msg)
				}
			}
			// The load balancers' paths still answer in plain HTTP.
			if code, msg := request(t, httpClient(nil, ""), "GET", admin(n, "http")+"/health", ""); code != http.StatusOK {
				t.Errorf("%s: plain GET /health answered %d %s", n.Name, code, msg)
			}
			for _, g := range garbage() {
				sendGarbage(t, net.JoinHostPort(n.Host, strconv.Itoa(n.AdminPort)), g)
			}
		}
		st, code, err := status(t, witness)
		if err != nil || code != 0 || st.Maintenance || len(st.Nodes) != 3 || st.Primary != primary.Host || st.Epoch != 1 ||
			!slices.Equal(slices.Sorted(slices.Values(st.AllowedNodes)), sortedHosts(members)) {
			t.Fatalf("the cluster changed: exit %d %v %+v", code, err, st)
		}
		unchanged(t)
	})

	t.Run("a node without the cluster key is refused", func(t *testing.T) {
		intruder := c.AddNode(t, "intruder", "", nil)
		// Even an allowed address gets nothing without the secret.
		cli(t, primary, "allow-node", c.Name, intruder.Host)
		wrong, err := otherKey.PEM()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(intruder.ClusterKeyFile(), wrong, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(intruder.ClusterKeyFile(), 0o600); err != nil {
			t.Fatal(err)
		}
		intruder.Start(t)
		if code := intruder.Wait(t, 60*time.Second); code != 78 {
			t.Fatalf("the node with another cluster key exited %d, want 78 (refused):\n%s", code, tailOf(intruder.Output()))
		}
		if out := intruder.Output(); !strings.Contains(out, "is not of this node's cluster key") {
			t.Fatalf("the refusal does not say why:\n%s", tailOf(out))
		}
		st, code, err := status(t, primary)
		if err != nil || code != 0 || len(st.Nodes) != 3 {
			t.Fatalf("after the refused join: exit %d %v, nodes %v", code, err, st.Nodes)
		}
		unchanged(t)
	})

	t.Run("a join in a live member's name does not take its vote", func(t *testing.T) {
		ca, cert, key := pki.FilesIn(standby.StateDir)
		creds, err := pki.LoadFiles(ca, cert, key, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		// The standby's own certificate and address: everything a thief
		// of the standby's host has.
		api := httpapi.NewClient(httpapi.URL(primary.Host, primary.AdminPort), "", standby.Host, 10*time.Second).WithTLS(creds.ClientConfig())
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, witnessFlag := range []bool{false, true} {
			resp, err := api.Join(ctx, httpapi.JoinRequest{
				Cluster: primary.Cluster, Address: standby.Host, BindAddress: standby.Bind(), Version: version.Version, Witness: witnessFlag,
			})
			var apiErr *httpapi.Error
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Msg, "already a voting member") {
				t.Fatalf("join as the live standby (witness=%v): %+v, %v; want 409 already a voting member", witnessFlag, resp, err)
			}
		}
		// Nor in another member's name: the certificate names the standby.
		_, err = api.Join(ctx, httpapi.JoinRequest{
			Cluster: primary.Cluster, Address: witness.Host, BindAddress: witness.Bind(), Version: version.Version, Witness: true,
		})
		var apiErr *httpapi.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
			t.Fatalf("join as the witness with the standby's certificate: %v; want 403", err)
		}
		unchanged(t)
	})

	t.Run("a connection flood locks out neither health checks nor pgfm", func(t *testing.T) {
		addr := net.JoinHostPort(primary.Host, strconv.Itoa(primary.AdminPort))
		// The attacker and the load balancer each get a loopback address
		// of their own. Not 127.0.0.1: here the pgfm command (which binds
		// no source address) reaches the agent from 127.0.0.1, and a
		// flood from the pgfm command's own address would rightly use up
		// its share of the per-address cap.
		fresh := func() string {
			for {
				h := testenv.Hosts(t, 1)[0]
				if !slices.ContainsFunc(c.Nodes, func(n *testenv.Node) bool { return n.Host == h }) {
					return h
				}
			}
		}
		attacker, lb := fresh(), fresh()
		for lb == attacker {
			lb = fresh()
		}
		const flood = 200
		perIP := max(httpapi.DefaultMaxConnections/4, 4)
		f := startFlood(addr, attacker, flood)
		defer f.stop()
		// All but perIP of them are closed at once (the rest within
		// firstByteWait, 5 s, later than this deadline).
		testenv.WaitFor(t, 3*time.Second, "the flood's excess connections closed", func() (bool, error) {
			return check(f.quick.Load() >= flood-int64(perIP), "%d of %d closed at once (%d dial errors)", f.quick.Load(), flood, f.dialErrs.Load())
		})
		// A load balancer on another address gets its answer meanwhile.
		start := time.Now()
		code, msg := request(t, httpClient(nil, lb), "GET", "http://"+addr+"/primary", "")
		if code != http.StatusOK || time.Since(start) > 3*time.Second {
			t.Fatalf("GET /primary from %s during the flood: %d after %s: %s", lb, code, time.Since(start), msg)
		}
		t.Logf("GET /primary during the flood answered in %s", time.Since(start).Round(time.Millisecond))
		out := cli(t, primary, "cluster-status", c.Name)
		if !strings.Contains(out, primary.Host) {
			t.Fatalf("cluster-status during the flood:\n%s", out)
		}
		t.Logf("the flood from %s made %d connections (%d closed at once in the first wave, %d dial errors)", attacker, f.dials.Load(), f.quick.Load(), f.dialErrs.Load())
		f.stop()
		unchanged(t)
	})

	t.Run("afterwards the cluster is healthy and fails over", func(t *testing.T) {
		unchanged(t)
		waitStatus(t, witness, 15*time.Second, "a healthy cluster", func(st efmStatus, code int) error {
			if code != 0 || len(st.Nodes) != 3 || st.Primary != primary.Host || st.Epoch != 1 {
				return fmt.Errorf("exit %d, primary %s epoch %d, nodes %+v", code, st.Primary, st.Epoch, st.Nodes)
			}
			for host, n := range st.Nodes {
				if n.Agent != "UP" {
					return fmt.Errorf("node %s %+v", host, n)
				}
			}
			return nil
		})
		primary.PG.Kill(t)
		waitStatus(t, witness, 60*time.Second, "the standby promoted", func(st efmStatus, code int) error {
			if st.Primary != standby.Host || st.PrimaryPhase != "promoted" {
				return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
			}
			if n := st.Nodes[standby.Host]; n.Type != "Primary" || n.DB != "UP" {
				return fmt.Errorf("new primary reported as %+v", n)
			}
			return nil
		})
		var rec bool
		standby.PG.QueryRow(t, "SELECT pg_is_in_recovery()", &rec)
		if rec {
			t.Fatal("the promoted standby is still in recovery")
		}
	})
}

// etcdMember is one etcd member as the attacks must leave it.
type etcdMember struct {
	ID      uint64
	Name    string
	Peers   string
	Learner bool
}

func (m etcdMember) String() string {
	return fmt.Sprintf("%x:%s:%s:learner=%v", m.ID, m.Name, m.Peers, m.Learner)
}

// etcdMembers lists the etcd members through n's unix socket in state.dir,
// sorted by ID.
func etcdMembers(n *testenv.Node) ([]etcdMember, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"unix://" + filepath.Join(n.StateDir, "etcd.sock")},
		DialTimeout: 3 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %w", n.Name, err)
	}
	var out []etcdMember
	for _, m := range resp.Members {
		out = append(out, etcdMember{ID: m.ID, Name: m.Name, Peers: strings.Join(m.PeerURLs, ","), Learner: m.IsLearner})
	}
	slices.SortFunc(out, func(a, b etcdMember) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

func sortedHosts(nodes []*testenv.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Host)
	}
	slices.Sort(out)
	return out
}

// httpClient is a client without keep-alives (every connection is closed
// after its request), speaking TLS with conf to https:// addresses, from
// source address local when set.
func httpClient(conf *tls.Config, local string) *http.Client {
	d := &net.Dialer{Timeout: 3 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: conf, DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
}

// request sends one request and returns the answer's status and body, or
// status 0 and the error when there was no answer.
func request(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// garbage is what a port scanner or a fuzzer sends: the start of a TLS
// record that is not a handshake, a record that claims 64 KiB, random
// bytes (from a fixed seed), a malformed HTTP request.
func garbage() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4)
	for i := range random {
		random[i] = byte(r.UintN(256))
	}
	return [][]byte{
		[]byte("\x16\x03\x01\x00\x05junk"),
		append([]byte("\x16\x03\x03\xff\xff"), make([]byte, 64)...),
		random,
		[]byte("\x00\xff\x13\x37"),
		[]byte("GET /v1/cluster HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
	}
}

// sendGarbage writes payload to addr, closes the sending side and expects
// the server to close the connection soon without a 2xx answer.
func sendGarbage(t *testing.T, addr string, payload []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(payload); err != nil {
		return // closed already
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	answer, err := io.ReadAll(io.LimitReader(conn, 4096))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s kept the connection open 10 s after %q", addr, payload)
	}
	if a := string(answer); strings.HasPrefix(a, "HTTP/1.1 2") || strings.HasPrefix(a, "HTTP/1.0 2") {
		t.Errorf("%s answered %q to %q", addr, firstLine(a), payload)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// connFlood keeps n connections from one source address open against a
// server, sending nothing; a connection the server closes is opened again
// (after a pause when it was closed at once).
type connFlood struct {
	quick    atomic.Int64 // first-wave connections closed within a second
	dials    atomic.Int64
	dialErrs atomic.Int64

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]bool
}

func startFlood(addr, from string, n int) *connFlood {
	f := &connFlood{done: make(chan struct{}), open: map[net.Conn]bool{}}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
	for range n {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for first := true; ; first = false {
				conn, err := d.Dial("tcp", addr)
				f.dials.Add(1)
				var lived time.Duration
				if err != nil {
					f.dialErrs.Add(1)
				} else if !f.track(conn) {
					return
				} else {
					start := time.Now()
					_, _ = conn.Read(make([]byte, 1)) // until the server (or stop) closes it
					lived = time.Since(start)
					f.untrack(conn)
				}
				if first && err == nil && lived < time.Second {
					f.quick.Add(1)
				}
				pause := time.Duration(0)
				if lived < time.Second {
					pause = 250 * time.Millisecond
				}
				select {
				case <-f.done:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	return f
}

// track registers an open connection, or closes it when the flood ended.
func (f *connFlood) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		c.Close()
		return false
	default:
	}
	f.open[c] = true
	return true
}

func (f *connFlood) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, c)
	c.Close()
}

// stop ends the flood and closes every connection; idempotent.
func (f *connFlood) stop() {
	f.once.Do(func() {
		f.mu.Lock()
		close(f.done)
		for c := range f.open {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
}
