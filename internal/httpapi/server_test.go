package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// fakeBackend is a small stateful Backend: an allowed list, a health value,
// the last join's remote IP, and an error to return from every operation.
type fakeBackend struct {
	mu       sync.Mutex
	health   Health
	allowed  []string
	stopped  bool
	err      error
	joinFrom string
	repl     ReplicationReport
}

func (f *fakeBackend) set(fn func(*fakeBackend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeBackend) Health() Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeBackend) Report(ctx context.Context) (cluster.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return cluster.Report{}, f.err
	}
	return cluster.Report{Cluster: "main", Allowed: slices.Clone(f.allowed)}, nil
}

func (f *fakeBackend) NodeStatus(ctx context.Context) (cluster.MemberStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return cluster.MemberStatus{}, f.err
	}
	return cluster.MemberStatus{Address: "127.0.0.1", Type: f.health.Type, DB: cluster.DBObservation{Up: f.health.DBUp, CurrentLSN: 0x3000060}}, nil
}

func (f *fakeBackend) Admit(ctx context.Context, req JoinRequest, remoteIP string) (JoinResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joinFrom = remoteIP
	if f.err != nil {
		return JoinResponse{}, f.err
	}
	return JoinResponse{Token: "etcd-token", InitialCluster: "a=http://" + req.BindAddress, MemberID: 42}, nil
}

func (f *fakeBackend) Allow(ctx context.Context, addr string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	if !slices.Contains(f.allowed, addr) {
		f.allowed = append(f.allowed, addr)
	}
	return "allowed " + addr, nil
}

func (f *fakeBackend) Disallow(ctx context.Context, addr string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	i := slices.Index(f.allowed, addr)
	if i < 0 {
		return "", Errorf(http.StatusNotFound, "%s is not allowed", addr)
	}
	f.allowed = slices.Delete(f.allowed, i, i+1)
	return "disallowed " + addr, nil
}

func (f *fakeBackend) StopCluster(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.stopped = true
	return "stopping", nil
}

func (f *fakeBackend) Resume(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	return "resumed", nil
}

func (f *fakeBackend) Promote(ctx context.Context, req PromoteRequest) (PromoteResult, error) {
	if f.err != nil {
		return PromoteResult{}, f.err
	}
	return PromoteResult{Done: true, Switchover: req.Switchover, To: req.Target, Outcome: "promoted " + req.Target}, nil
}

func (f *fakeBackend) SetPriority(ctx context.Context, addr string, priority int) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("priority of %s is %d", addr, priority), nil
}

func (f *fakeBackend) SetMaintenance(ctx context.Context, on bool) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("maintenance %t", on), nil
}

func (f *fakeBackend) Replication(ctx context.Context) (ReplicationReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return ReplicationReport{}, f.err
	}
	return f.repl, nil
}

func (f *fakeBackend) CreateStandby(ctx context.Context, req CreateStandbyRequest) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("standby slot=%s dry=%t", req.Slot, req.DryRun), nil
}

func (f *fakeBackend) ResetMembers(ctx context.Context) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return "reset", nil
}

const token = "tok"

func newTestServer(t *testing.T) (*fakeBackend, *httptest.Server) {
	t.Helper()
	f := &fakeBackend{}
	s := NewServer(f, token, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(s.routes)
	t.Cleanup(ts.Close)
	return f, ts
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAdminNeedsToken(t *testing.T) {
	f, ts := newTestServer(t)
	ops := []struct {
		name string
		call func(*Client) (string, error)
		want string
	}{
		{"allow", func(c *Client) (string, error) { return c.Allow(context.Background(), "10.0.0.9") }, "allowed 10.0.0.9"},
		{"disallow", func(c *Client) (string, error) { return c.Disallow(context.Background(), "10.0.0.9") }, "disallowed 10.0.0.9"},
		{"stop-cluster", func(c *Client) (string, error) { return c.StopCluster(context.Background()) }, "stopping"},
		{"resume", func(c *Client) (string, error) { return c.Resume(context.Background()) }, "resumed"},
		{"promote", func(c *Client) (string, error) {
			r, err := c.Promote(context.Background(), PromoteRequest{Switchover: true, Target: "10.0.0.2"})
			return r.Outcome, err
		}, "promoted 10.0.0.2"},
		{"set-priority", func(c *Client) (string, error) { return c.SetPriority(context.Background(), "10.0.0.2", 1) }, "priority of 10.0.0.2 is 1"},
		{"maintenance", func(c *Client) (string, error) { return c.SetMaintenance(context.Background(), true) }, "maintenance true"},
		{"create-standby", func(c *Client) (string, error) {
			return c.CreateStandby(context.Background(), CreateStandbyRequest{Slot: "s1", DryRun: true})
		}, "standby slot=s1 dry=true"},
		{"reset-members", func(c *Client) (string, error) { return c.ResetMembers(context.Background()) }, "reset"},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			for _, bad := range []string{"", "wrong", "tokx", "to"} {
				msg, err := op.call(NewClient(ts.URL, bad, "", 5*time.Second))
				var he *Error
				if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || !strings.Contains(he.Msg, "not authorized") {
					t.Errorf("token %q: %q, %v; want a 401 *Error", bad, msg, err)
				}
			}
			msg, err := op.call(NewClient(ts.URL, token, "", 5*time.Second))
			if err != nil || msg != op.want {
				t.Errorf("with the token: %q, %v; want %q", msg, err, op.want)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped || len(f.allowed) != 0 {
		t.Errorf("backend state: stopped %v, allowed %q", f.stopped, f.allowed)
	}
}

// Unauthorised requests must not reach the backend.
func TestAdminRefusedLeavesBackendAlone(t *testing.T) {
	f, ts := newTestServer(t)
	c := NewClient(ts.URL, "wrong", "", 5*time.Second)
	c.Allow(context.Background(), "10.0.0.9")
	c.StopCluster(context.Background())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || len(f.allowed) != 0 {
		t.Errorf("refused requests changed the backend: stopped %v, allowed %q", f.stopped, f.allowed)
	}
}

// A server built without a token refuses every admin request, even one
// sending "Bearer " with an empty token.
func TestAdminEmptyServerToken(t *testing.T) {
	s := NewServer(&fakeBackend{}, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ts := httptest.NewServer(s.routes)
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/stop-cluster", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
}

func TestBackendErrorReachesClient(t *testing.T) {
	f, ts := newTestServer(t)
	const msg = "stop-cluster is disabled on this node (enable.stop.cluster=false)"
	f.set(func(f *fakeBackend) { f.err = Errorf(http.StatusForbidden, "%s", msg) })
	c := NewClient(ts.URL, token, "", 5*time.Second)
	calls := map[string]func() error{
		"stop-cluster": func() error { _, err := c.StopCluster(context.Background()); return err },
		"allow":        func() error { _, err := c.Allow(context.Background(), "10.0.0.9"); return err },
		"report":       func() error { _, err := c.Report(context.Background()); return err },
		"node":         func() error { _, err := c.NodeStatus(context.Background()); return err },
		"replication":  func() error { _, err := c.Replication(context.Background()); return err },
		"join": func() error {
			url, creds := newSecureServer(t, f, 8)
			c := NewClient(url, "", "", 5*time.Second).WithTLS(creds.ClientConfig())
			_, err := c.Join(context.Background(), JoinRequest{Cluster: "main", Address: "127.0.0.1"})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		var he *Error
		if !errors.As(err, &he) || he.Status != http.StatusForbidden || he.Msg != msg {
			t.Errorf("%s: err = %#v, want *Error{403, %q}", name, err, msg)
		}
	}

	// A plain error is a 500 with its message.
	f.set(func(f *fakeBackend) { f.err = errors.New("boom") })
	_, err := c.Report(context.Background())
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusInternalServerError || he.Msg != "boom" {
		t.Errorf("plain error: %#v", err)
	}
}

func TestClientReadsAnswers(t *testing.T) {
	f, ts := newTestServer(t)
	f.set(func(f *fakeBackend) {
		f.allowed = []string{"10.0.0.1"}
		f.health = Health{Type: cluster.Standby, DBUp: true}
	})
	c := NewClient(ts.URL, "", "", 5*time.Second)
	rep, err := c.Report(context.Background())
	if err != nil || rep.Cluster != "main" || !slices.Equal(rep.Allowed, []string{"10.0.0.1"}) {
		t.Errorf("Report = %+v, %v", rep, err)
	}
	st, err := c.NodeStatus(context.Background())
	if err != nil || st.Type != cluster.Standby || !st.DB.Up || st.DB.CurrentLSN != 0x3000060 {
		t.Errorf("NodeStatus = %+v, %v", st, err)
	}
}

// The replication report crosses the wire intact, without the token (it
// is no admin operation): LSNs as text, unknown lags as null.
func TestClientReadsReplication(t *testing.T) {
	f, ts := newTestServer(t)
	lagB, lagS := int64(4096), 0.25
	want := ReplicationReport{
		Cluster: "main", Reporter: "10.0.0.3", Primary: "10.0.0.1", Epoch: 2, PrimaryPhase: "promoted", CurrentLSN: 0x5001000,
		Standbys: []StandbyReplication{
			{Node: "10.0.0.2", Upstream: "10.0.0.1", Connected: true, State: "streaming", SyncState: "async",
				SentLSN: 0x5001000, WriteLSN: 0x5001000, FlushLSN: 0x5001000, ReplayLSN: 0x5000000,
				LagBytes: &lagB, LagSeconds: &lagS, Slot: "node2", PID: 4242, ClientAddr: "10.0.0.2", ApplicationName: "node2"},
			{Node: "2001:db8::4", State: StateNotConnected, Detail: "its agent is down"},
		},
		Others: []StandbyReplication{},
	}
	f.set(func(f *fakeBackend) { f.repl = want })
	c := NewClient(ts.URL, "", "", 5*time.Second)
	got, err := c.Replication(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Replication =\n%+v\nwant\n%+v", got, want)
	}
	if !got.Standbys[0].Streaming() || got.Standbys[1].Streaming() {
		t.Errorf("Streaming: %t, %t; want true, false", got.Standbys[0].Streaming(), got.Standbys[1].Streaming())
	}

	resp, err := http.Get(ts.URL + "/v1/replication")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, w := range []string{`"current_lsn": "0/5001000"`, `"replay_lsn": "0/5000000"`, `"lag_bytes": null`, `"lag_seconds": 0.25`, `"state": "not connected"`} {
		if !strings.Contains(string(body), w) {
			t.Errorf("GET /v1/replication lacks %s:\n%s", w, body)
		}
	}
}

func post(t *testing.T, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadBodies(t *testing.T) {
	f, ts := newTestServer(t)
	big := `{"address":"` + strings.Repeat("a", 64<<10) + `"}`
	exact := `{"address":"10.0.0.9"}` + strings.Repeat(" ", 64<<10-len(`{"address":"10.0.0.9"}`))
	cases := []struct {
		name, path, auth, body string
		code                   int
		want                   string
	}{
		{"oversized allow", "/v1/allow", token, big, 400, "too large"},
		{"oversized join", "/v1/join", "", big, 400, "too large"},
		{"malformed allow", "/v1/allow", token, `{"address":`, 400, "bad request"},
		{"malformed join", "/v1/join", "", `not json`, 400, "bad request"},
		{"empty disallow", "/v1/disallow", token, ``, 400, "bad request"},
		{"wrong type", "/v1/allow", token, `{"address":7}`, 400, "bad request"},
		{"body of exactly 64 KiB is accepted", "/v1/allow", token, exact, 200, "allowed 10.0.0.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, ts.URL+tc.path, tc.auth, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s; want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.allowed, []string{"10.0.0.9"}) {
		t.Errorf("allowed = %q: only the well-formed request may reach the backend", f.allowed)
	}
}

func TestMethods(t *testing.T) {
	_, ts := newTestServer(t)
	if got := get(t, ts.URL+"/v1/allow"); got != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/allow = %d, want 405", got)
	}
	if code, _ := post(t, ts.URL+"/health", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /health = %d, want 405", code)
	}
}

func TestJoinPassesConnectionIP(t *testing.T) {
	f := &fakeBackend{}
	url, creds := newSecureServer(t, f, 8)
	c := NewClient(url, "", "127.0.0.1", 5*time.Second).WithTLS(creds.ClientConfig())
	resp, err := c.Join(context.Background(), JoinRequest{Cluster: "main", Address: "127.0.0.1", BindAddress: "127.0.0.1:7800"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Token != "etcd-token" || resp.MemberID != 42 || resp.InitialCluster != "a=http://127.0.0.1:7800" {
		t.Errorf("JoinResponse = %+v", resp)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.joinFrom != "127.0.0.1" {
		t.Errorf("Admit got remote IP %q, want 127.0.0.1 (no port)", f.joinFrom)
	}
}

func TestClientUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	c := NewClient(url, token, "", 5*time.Second)
	_, err = c.StopCluster(context.Background())
	var un *UnreachableError
	if !errors.As(err, &un) || un.URL != url || !strings.Contains(err.Error(), "no agent answers at "+url) {
		t.Errorf("err = %#v, want *UnreachableError for %s", err, url)
	}
	var he *Error
	if errors.As(err, &he) {
		t.Errorf("unreachable error is also an *Error: %v", err)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		host string
		port int
		want string
	}{
		{"10.0.0.1", 7809, "http://10.0.0.1:7809"},
		{"2001:db8::1", 7809, "http://[2001:db8::1]:7809"},
	} {
		if got := URL(tc.host, tc.port); got != tc.want {
			t.Errorf("URL(%q, %d) = %q, want %q", tc.host, tc.port, got, tc.want)
		}
	}
	if got := fmt.Sprint(StatusOf(errors.New("x"))); got != "500" {
		t.Errorf("StatusOf(plain) = %s", got)
	}
}
