package httpapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/pki"
)

// callRecorder is a Backend that succeeds at everything and records each
// call with the request it was given.
type callRecorder struct {
	mu     sync.Mutex
	calls  []string
	args   []any
	health Health
}

func (c *callRecorder) record(name string, arg any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, name)
	c.args = append(c.args, arg)
}

func (c *callRecorder) Health() Health { return c.health }
func (c *callRecorder) Report(ctx context.Context) (cluster.Report, error) {
	c.record("Report", nil)
	return cluster.Report{Cluster: "main"}, nil
}
func (c *callRecorder) NodeStatus(ctx context.Context) (cluster.MemberStatus, error) {
	c.record("NodeStatus", nil)
	return cluster.MemberStatus{Address: "10.0.0.1"}, nil
}
func (c *callRecorder) Admit(ctx context.Context, req JoinRequest, remoteIP string) (JoinResponse, error) {
	c.record("Admit", req)
	return JoinResponse{Token: "t", InitialCluster: "a=https://10.0.0.1:7800", MemberID: 1}, nil
}
func (c *callRecorder) Allow(ctx context.Context, addr string) (string, error) {
	c.record("Allow", AddressRequest{Address: addr})
	return "allowed", nil
}
func (c *callRecorder) Disallow(ctx context.Context, addr string) (string, error) {
	c.record("Disallow", AddressRequest{Address: addr})
	return "disallowed", nil
}
func (c *callRecorder) StopCluster(ctx context.Context) (string, error) {
	c.record("StopCluster", nil)
	return "stopping", nil
}
func (c *callRecorder) Resume(ctx context.Context) (string, error) {
	c.record("Resume", nil)
	return "resumed", nil
}
func (c *callRecorder) Promote(ctx context.Context, req PromoteRequest) (PromoteResult, error) {
	c.record("Promote", req)
	return PromoteResult{Done: true, To: req.Target}, nil
}
func (c *callRecorder) SetPriority(ctx context.Context, addr string, priority int) (string, error) {
	c.record("SetPriority", PriorityRequest{Address: addr, Priority: priority})
	return "set", nil
}
func (c *callRecorder) SetMaintenance(ctx context.Context, on bool) (string, error) {
	c.record("SetMaintenance", MaintenanceRequest{On: on})
	return "maintenance", nil
}
func (c *callRecorder) Replication(ctx context.Context) (ReplicationReport, error) {
	c.record("Replication", nil)
	return ReplicationReport{Cluster: "main"}, nil
}
func (c *callRecorder) CreateStandby(ctx context.Context, req CreateStandbyRequest) (string, error) {
	c.record("CreateStandby", req)
	return "standby", nil
}
func (c *callRecorder) ResetMembers(ctx context.Context) (string, error) {
	c.record("ResetMembers", nil)
	return "reset", nil
}

// fuzzPeer is the TLS state of a client that presented a verified
// certificate naming 10.0.0.5: what the guard and join's address check
// look at.
var fuzzPeer = sync.OnceValue(func() *tls.ConnectionState {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "10.0.0.5"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("10.0.0.5")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert},
		VerifiedChains: [][]*x509.Certificate{{cert}}}
})

// bodyEndpoints are the handlers that decode a request body: the backend
// call each makes and the request value it passes on.
var bodyEndpoints = []struct {
	path  string
	call  string
	admin bool
	req   func() any // a new request value to decode into
}{
	{"/v1/join", "Admit", false, func() any { return new(JoinRequest) }},
	{"/v1/allow", "Allow", true, func() any { return new(AddressRequest) }},
	{"/v1/disallow", "Disallow", true, func() any { return new(AddressRequest) }},
	{"/v1/promote", "Promote", true, func() any { return new(PromoteRequest) }},
	{"/v1/set-priority", "SetPriority", true, func() any { return new(PriorityRequest) }},
	{"/v1/maintenance", "SetMaintenance", true, func() any { return new(MaintenanceRequest) }},
	{"/v1/create-standby", "CreateStandby", true, func() any { return new(CreateStandbyRequest) }},
}

// FuzzRequestBody posts a body to every endpoint that decodes one, over
// TLS with a certificate of the cluster naming 10.0.0.5, with the admin
// token or without. The answer is never a 5xx and always JSON. Without the
// token an admin request is refused (401); a body that is not the
// endpoint's JSON is a 400; neither reaches the backend. A body that
// decodes reaches the backend exactly once with exactly what it says, the
// join only for the address the certificate names (else 403).
func FuzzRequestBody(f *testing.F) {
	for i, body := range []string{
		`{"cluster":"main","address":"10.0.0.5","bind_address":"10.0.0.5:7800","version":"1.0","witness":false}`,
		`{"address":"10.0.0.9"}`,
		`{"address":"10.0.0.9"}`,
		`{"switchover":true,"target":"10.0.0.2","no_scripts":false,"quiet":true,"force":false}`,
		`{"address":"10.0.0.2","priority":1}`,
		`{"on":true}`,
		`{"slot":"s1","waldir":"/pgwal","dry_run":true}`,
	} {
		f.Add(uint8(i), true, []byte(body))
	}
	for _, body := range []string{
		"", "null", "{}", "[]", `"x"`, "{", `{"priority":"1"}`, `{"priority":1e400}`, `{"on":"yes"}`,
		`{"address":"10.0.0.5"}{"address":"10.0.0.6"}`, "\xff\xfe", `{"address":"[10.0.0.5]"}`,
		`{"ADDRESS":"10.0.0.5","address":"10.0.0.6"}`, strings.Repeat("[", 10000),
		strings.Repeat(" ", maxBody) + "{}", // valid, but larger than the server reads
	} {
		for i := range bodyEndpoints {
			f.Add(uint8(i), true, []byte(body))
		}
	}
	f.Add(uint8(1), false, []byte(`{"address":"10.0.0.9"}`))
	f.Add(uint8(0), false, []byte(`{"cluster":"main","address":"10.0.0.5","bind_address":"10.0.0.5:7800"}`))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, which uint8, withToken bool, body []byte) {
		ep := bodyEndpoints[int(which)%len(bodyEndpoints)]
		b := &callRecorder{}
		s := NewServer(b, token, log)
		r := httptest.NewRequest(http.MethodPost, ep.path, bytes.NewReader(body))
		r.TLS = fuzzPeer()
		r.RemoteAddr = "10.0.0.5:40000"
		if withToken {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(w, r)

		code := w.Code
		if code >= 500 {
			t.Fatalf("POST %s %q: %d %s", ep.path, body, code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("POST %s %q: %d with a body that is not JSON: %q", ep.path, body, code, w.Body)
		}
		want := ep.req()
		decodeErr := json.Unmarshal(body, want)
		if len(body) > maxBody {
			decodeErr = errors.New("too large")
		}
		var wantCode int
		reaches := false
		switch {
		case ep.admin && !withToken:
			wantCode = http.StatusUnauthorized
		case decodeErr != nil:
			wantCode = http.StatusBadRequest
		case ep.call == "Admit" && !pki.PeerNames(r.TLS, want.(*JoinRequest).Address):
			wantCode = http.StatusForbidden
		default:
			wantCode, reaches = http.StatusOK, true
		}
		if code != wantCode {
			t.Fatalf("POST %s %q (token %v): %d %s; want %d", ep.path, body, withToken, code, w.Body, wantCode)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if !reaches {
			if len(b.calls) != 0 {
				t.Fatalf("POST %s %q answered %d, yet reached the backend: %v %+v", ep.path, body, code, b.calls, b.args)
			}
			var m Message
			if json.Unmarshal(w.Body.Bytes(), &m) != nil || m.Message == "" {
				t.Fatalf("POST %s %q: %d without a message: %s", ep.path, body, code, w.Body)
			}
			return
		}
		wantArg := reflect.ValueOf(want).Elem().Interface()
		if len(b.calls) != 1 || b.calls[0] != ep.call || !reflect.DeepEqual(b.args[0], wantArg) {
			t.Fatalf("POST %s %q: backend got %v %+v; want one %s %+v", ep.path, body, b.calls, b.args, ep.call, wantArg)
		}
	})
}

// roundTripper answers every request with one canned response.
type roundTripper struct {
	status int
	body   []byte
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: rt.status, Status: strconv.Itoa(rt.status) + " " + http.StatusText(rt.status),
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(rt.body)),
		ContentLength: int64(len(rt.body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

// clientCalls are the Client's methods by the type of answer they decode;
// each returns the decoded answer.
var clientCalls = []struct {
	name  string
	call  func(*Client) (any, error)
	fresh func() any
}{
	{"Report", func(c *Client) (any, error) { return c.Report(context.Background()) }, func() any { return new(cluster.Report) }},
	{"NodeStatus", func(c *Client) (any, error) { return c.NodeStatus(context.Background()) }, func() any { return new(cluster.MemberStatus) }},
	{"Replication", func(c *Client) (any, error) { return c.Replication(context.Background()) }, func() any { return new(ReplicationReport) }},
	{"Join", func(c *Client) (any, error) {
		return c.Join(context.Background(), JoinRequest{Cluster: "main", Address: "10.0.0.5", BindAddress: "10.0.0.5:7800"})
	}, func() any { return new(JoinResponse) }},
	{"Promote", func(c *Client) (any, error) {
		return c.Promote(context.Background(), PromoteRequest{Switchover: true})
	}, func() any { return new(PromoteResult) }},
	{"Allow", func(c *Client) (any, error) {
		m, err := c.Allow(context.Background(), "10.0.0.9")
		return Message{Message: m}, err
	}, func() any { return new(Message) }},
}

// FuzzClientAnswer has the Client decode an agent's answer of any status
// and body. An error status is an *Error with that status and a message
// (the agent's own when it sent one). A success decodes exactly as
// encoding/json decodes the body, or is an error that is not an *Error;
// and what it decodes survives being encoded and decoded again (times,
// WAL positions, durations) unchanged.
func FuzzClientAnswer(f *testing.F) {
	seeds := []any{
		cluster.Report{Cluster: "main", Reporter: "10.0.0.1", GeneratedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC),
			Nodes: []cluster.NodeReport{{Address: "10.0.0.2", Type: cluster.Standby, Agent: cluster.AgentUp, DB: cluster.DBUp,
				Probe: cluster.DBObservation{Up: true, InRecovery: true, ReplayLSN: 0x3000060}}},
			Allowed: []string{"10.0.0.1", "10.0.0.2"}, Epoch: 4, PrimaryNode: "10.0.0.1", PrimaryPhase: "promoted",
			Priorities: map[string]int{"10.0.0.2": 1}, Sync: &cluster.SyncReport{Epoch: 4, Members: []string{"10.0.0.2"}, Quorum: 1}},
		cluster.MemberStatus{Address: "10.0.0.1", Type: cluster.Primary, DB: cluster.DBObservation{Up: true, CurrentLSN: 0x1_0000_0000},
			ObservedAt: time.Date(2026, 12, 2, 10, 0, 0, 5, time.FixedZone("", 3600))},
		ReplicationReport{Cluster: "main", CurrentLSN: 0x3000060, Standbys: []StandbyReplication{{Node: "10.0.0.2", Connected: true,
			State: "streaming", ReplayLSN: 0x3000000, LagBytes: new(int64), LagSeconds: new(float64)}}},
		JoinResponse{Token: "t", InitialCluster: "a=https://10.0.0.1:7800,b=https://10.0.0.5:7800", MemberID: 1<<64 - 1},
		PromoteResult{Done: true, Switchover: true, From: "10.0.0.1", To: "10.0.0.2", Epoch: 5, Outcome: "done",
			Steps: []Step{{Name: "fenced", At: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), After: Duration(1500 * time.Millisecond)}}},
		Message{Message: "allowed 10.0.0.9"},
	}
	for i, v := range seeds {
		b, _ := json.Marshal(v)
		f.Add(uint8(i), uint16(200), b)
	}
	for i, body := range []string{
		`{"message":"not authorized: admin commands must run on the node"}`, "", "<html>502</html>", `{"message":""}`,
		`{"steps":[{"after":"1.0005s"}]}`, `{"steps":[{"after":1}]}`, `{"steps":[{"after":"2562047h47m16.854775807s"}]}`,
		`{"current_lsn":"0/0"}`, `{"current_lsn":"1/"}`, `{"db":{"current_lsn":"FFFFFFFF/FFFFFFFF"}}`,
		`{"generated_at":"2026-12-02T10:00:00.123456789+14:00"}`, `{"generated_at":"0000-01-01T00:00:00-01:00"}`,
		`{"member_id":-1}`, `{"standbys":[{"lag_seconds":1e-400}]}`, "null", `{"priorities":{"a":1,"a":2}}`,
	} {
		for _, status := range []uint16{200, 201, 400, 401, 403, 409, 500, 503} {
			f.Add(uint8(i), status, []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, status uint16, body []byte) {
		op := clientCalls[int(which)%len(clientCalls)]
		code := 200 + int(status)%400
		if code >= 300 && code < 400 {
			code += 100 // redirects are the http.Client's business
		}
		c := &Client{BaseURL: "http://10.0.0.1:7809", Token: token, HTTP: &http.Client{Transport: roundTripper{code, body}}}
		got, err := op.call(c)
		var he *Error
		if code/100 != 2 {
			if !errors.As(err, &he) || he.Status != code || he.Msg == "" {
				t.Fatalf("%s answered %d %q: %v; want an *Error with status %d", op.name, code, body, err, code)
			}
			var m Message
			if json.Unmarshal(body, &m) == nil && m.Message != "" && he.Msg != m.Message {
				t.Fatalf("%s answered %d %q: message %q, want the agent's", op.name, code, body, he.Msg)
			}
			return
		}
		want := op.fresh()
		decodeErr := json.Unmarshal(body, want)
		if (err == nil) != (decodeErr == nil) || errors.As(err, &he) {
			t.Fatalf("%s answered %d %q: %v; encoding/json says %v", op.name, code, body, err, decodeErr)
		}
		if err != nil {
			return
		}
		first, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("%s decoded %q into %+v, which does not encode: %v", op.name, body, got, err)
		}
		if wantJSON, _ := json.Marshal(want); !bytes.Equal(first, wantJSON) {
			t.Fatalf("%s decoded %q as %s; encoding/json as %s", op.name, body, first, wantJSON)
		}
		again := op.fresh()
		if err := json.Unmarshal(first, again); err != nil {
			t.Fatalf("%s: %s, as encoded, does not decode: %v", op.name, first, err)
		}
		if second, _ := json.Marshal(again); !bytes.Equal(first, second) {
			t.Fatalf("%s: answer %q encodes as %s, then as %s", op.name, body, first, second)
		}
	})
}

// FuzzParseMaxLag reads /standby?max_lag= from load balancers' settings.
// What it accepts is a byte count that reads back as itself, and the
// endpoint answers 400 exactly for what it refuses, else 200 or 503 with
// the limit echoed, never reaching further than the agent's Health.
func FuzzParseMaxLag(f *testing.F) {
	for _, s := range []string{"0", "16777216", "16MB", "512 kB", "1tb", " 7 B ", "", "-1", "1.5MB", "16 PB",
		"9223372036854775807", "9223372036854775808", "8388608TB", "MB", "0x10", "１６"} {
		f.Add(s, int64(1<<20))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, s string, lag int64) {
		n, err := ParseMaxLag(s)
		if err == nil {
			if n < 0 {
				t.Fatalf("ParseMaxLag(%q) = %d", s, n)
			}
			if back, err := ParseMaxLag(strconv.FormatInt(n, 10)); err != nil || back != n {
				t.Fatalf("ParseMaxLag(%q) = %d, which reads back as %d, %v", s, n, back, err)
			}
		}
		lag = max(lag, 0)
		b := &callRecorder{health: Health{Type: cluster.Standby, DBUp: true, InRecovery: true, WalReceiver: "streaming",
			LagBytes: lag, LagKnown: true}}
		srv := NewServer(b, token, log)
		r := httptest.NewRequest(http.MethodGet, "/standby?"+url.Values{"max_lag": {s}}.Encode(), nil)
		w := httptest.NewRecorder()
		srv.srv.Handler.ServeHTTP(w, r)
		var ans HealthAnswer
		if jerr := json.Unmarshal(w.Body.Bytes(), &ans); jerr != nil && err == nil {
			t.Fatalf("max_lag=%q: %d with %q: %v", s, w.Code, w.Body, jerr)
		}
		switch {
		case err != nil:
			if w.Code != http.StatusBadRequest {
				t.Fatalf("max_lag=%q (%v): %d, want 400", s, err, w.Code)
			}
		case ans.MaxLagBytes == nil || *ans.MaxLagBytes != n:
			t.Fatalf("max_lag=%q: answer %s does not echo %d", s, w.Body, n)
		case (w.Code == http.StatusOK) != (lag <= n):
			t.Fatalf("max_lag=%q (%d), lag %d: %d", s, n, lag, w.Code)
		}
		if len(b.calls) != 0 {
			t.Fatalf("a health check called the backend: %v", b.calls)
		}
	})
}
