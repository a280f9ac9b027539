package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// getAnswer fetches url and decodes a health answer.
func getAnswer(t *testing.T, url string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v\n%s", url, err, body)
	}
	return resp.StatusCode, resp.Header, m
}

var (
	writablePrimary = Health{Type: cluster.Primary, DBUp: true, HoldsLease: true, Primary: true}
	streaming       = Health{Type: cluster.Standby, DBUp: true, InRecovery: true, HoldsLease: true,
		WalReceiver: "streaming", LagBytes: 1000, LagKnown: true}
)

func with(h Health, fn func(*Health)) Health {
	fn(&h)
	return h
}

func TestHealthEndpoints(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name string
		h    Health
		// expected status of /health, /primary, /standby
		health, primary, standby int
		why                      string // in /primary's or /standby's reason when 503
	}{
		{"primary holding the lease", writablePrimary, 200, 200, 503, "not in recovery"},
		{"primary, agent idle (the cluster keeps it)", with(writablePrimary, func(h *Health) { h.Type = cluster.Idle }), 200, 200, 503, "idle"},
		{"primary without a valid lease", with(writablePrimary, func(h *Health) { h.HoldsLease, h.Primary = false, false }), 200, 503, 503, "no valid lease"},
		{"writable, lease, but not named promoted primary", with(writablePrimary, func(h *Health) { h.Primary = false }), 200, 503, 503, "primary record"},
		{"Primary set but in recovery", with(writablePrimary, func(h *Health) { h.InRecovery = true }), 200, 503, 503, "in recovery"},
		{"Primary set but database down", with(writablePrimary, func(h *Health) { h.DBUp = false }), 503, 503, 503, "database is down"},
		{"Primary set but no lease", with(writablePrimary, func(h *Health) { h.HoldsLease = false }), 200, 503, 503, "no valid lease"},
		{"streaming standby", streaming, 200, 503, 200, "in recovery"},
		{"streaming standby without a lease still serves reads", with(streaming, func(h *Health) { h.HoldsLease = false }), 200, 503, 200, "in recovery"},
		{"standby with lag unknown, no max_lag", with(streaming, func(h *Health) { h.LagKnown, h.LagBytes = false, 0 }), 200, 503, 200, ""},
		{"standby, WAL receiver starting", with(streaming, func(h *Health) { h.WalReceiver = "starting" }), 200, 503, 503, `"starting", not streaming`},
		{"standby, no WAL receiver", with(streaming, func(h *Health) { h.WalReceiver = "" }), 200, 503, 503, "no WAL receiver"},
		{"standby, agent idle", with(streaming, func(h *Health) { h.Type = cluster.Idle }), 200, 503, 503, "idle"},
		{"standby, database down", with(streaming, func(h *Health) { h.DBUp = false }), 503, 503, 503, "database is down"},
		{"standby type not in recovery", with(streaming, func(h *Health) { h.InRecovery = false }), 200, 503, 503, "not in recovery"},
		{"in recovery but type Primary", with(streaming, func(h *Health) { h.Type = cluster.Primary }), 200, 503, 503, `"Primary", not Standby`},
		{"agent starting (no type yet)", Health{}, 503, 503, 503, "database is down"},
		{"witness", Health{Type: cluster.Witness, HoldsLease: true}, 200, 503, 503, "witness"},
		{"witness without a lease", Health{Type: cluster.Witness}, 200, 503, 503, "witness"},
		{"standby 16MB behind", with(streaming, func(h *Health) { h.LagBytes = 16 * mb }), 200, 503, 200, ""},
	}
	f, ts := newTestServer(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.set(func(f *fakeBackend) { f.health = tc.h })
			for path, want := range map[string]int{"/health": tc.health, "/primary": tc.primary, "/standby": tc.standby} {
				code, hdr, body := getAnswer(t, ts.URL+path)
				if code != want {
					t.Errorf("GET %s = %d, want %d (%v)", path, code, want, body)
				}
				if cc := hdr.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
				}
				if ct := hdr.Get("Content-Type"); ct != "application/json" {
					t.Errorf("GET %s: Content-Type %q", path, ct)
				}
				status, _ := body["status"].(string)
				if (code == 200) != (status == "ok") {
					t.Errorf("GET %s: status %q with code %d", path, status, code)
				}
				if body["type"] != string(tc.h.Type) || body["db_up"] != tc.h.DBUp || body["in_recovery"] != tc.h.InRecovery {
					t.Errorf("GET %s: body %v does not describe %+v", path, body, tc.h)
				}
				lag, hasLag := body["lag_bytes"]
				if hasLag != tc.h.LagKnown || (hasLag && lag != float64(tc.h.LagBytes)) {
					t.Errorf("GET %s: lag_bytes %v, want %d known=%v", path, lag, tc.h.LagBytes, tc.h.LagKnown)
				}
			}
			// Every 503 says why; tc.why is among the reasons.
			var reasons []string
			for path, code := range map[string]int{"/health": tc.health, "/primary": tc.primary, "/standby": tc.standby} {
				if code == 200 {
					continue
				}
				_, _, body := getAnswer(t, ts.URL+path)
				r := stringOr(body["reason"])
				if r == "" {
					t.Errorf("GET %s: 503 without a reason", path)
				}
				reasons = append(reasons, r)
			}
			if all := strings.Join(reasons, " | "); !strings.Contains(all, tc.why) {
				t.Errorf("reasons %q do not say %q", all, tc.why)
			}
		})
	}
}

func stringOr(v any) string {
	s, _ := v.(string)
	return s
}

func TestStandbyMaxLag(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name  string
		h     Health
		query string
		want  int
	}{
		{"within, bytes", with(streaming, func(h *Health) { h.LagBytes = 1000 }), "max_lag=1000", 200},
		{"over, bytes", with(streaming, func(h *Health) { h.LagBytes = 1001 }), "max_lag=1000", 503},
		{"zero lag, max 0", with(streaming, func(h *Health) { h.LagBytes = 0 }), "max_lag=0", 200},
		{"within 16MB", with(streaming, func(h *Health) { h.LagBytes = 16 * mb }), "max_lag=16MB", 200},
		{"over 16MB", with(streaming, func(h *Health) { h.LagBytes = 16*mb + 1 }), "max_lag=16MB", 503},
		{"kB", with(streaming, func(h *Health) { h.LagBytes = 512 * 1024 }), "max_lag=512kB", 200},
		{"lower-case unit", with(streaming, func(h *Health) { h.LagBytes = 2 * mb }), "max_lag=1mb", 503},
		{"space before unit (escaped)", with(streaming, func(h *Health) { h.LagBytes = mb }), "max_lag=1%20MB", 200},
		{"GB", with(streaming, func(h *Health) { h.LagBytes = 3 << 30 }), "max_lag=2GB", 503},
		{"lag unknown with max_lag", with(streaming, func(h *Health) { h.LagKnown, h.LagBytes = false, 0 }), "max_lag=16MB", 503},
		{"not streaming beats a good lag", with(streaming, func(h *Health) { h.WalReceiver = "waiting" }), "max_lag=16MB", 503},
		{"primary with max_lag", writablePrimary, "max_lag=16MB", 503},
		{"max_lag alongside other parameters", streaming, "foo=bar&max_lag=1kB", 200},
		{"empty", streaming, "max_lag=", 400},
		{"negative", streaming, "max_lag=-1", 400},
		{"fraction", streaming, "max_lag=1.5MB", 400},
		{"unknown unit", streaming, "max_lag=16MiB", 400},
		{"words", streaming, "max_lag=lots", 400},
		{"overflow", streaming, "max_lag=9999999999TB", 400},
		{"bad on a primary too", writablePrimary, "max_lag=x", 400},
	}
	f, ts := newTestServer(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.set(func(f *fakeBackend) { f.health = tc.h })
			code, hdr, body := getAnswer(t, ts.URL+"/standby?"+tc.query)
			if code != tc.want {
				t.Fatalf("GET /standby?%s = %d, want %d (%v)", tc.query, code, tc.want, body)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", hdr.Get("Cache-Control"))
			}
			switch code {
			case 400:
				msg, _ := body["message"].(string)
				if !strings.Contains(msg, "max_lag") || !strings.Contains(msg, "e.g. max_lag=16777216 or max_lag=16MB") {
					t.Errorf("400 message %q does not say how to write max_lag", msg)
				}
			default:
				if _, ok := body["max_lag_bytes"]; !ok {
					t.Errorf("body %v lacks max_lag_bytes", body)
				}
			}
		})
	}
}

func TestParseMaxLag(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1": 1, "16777216": 16 << 20, "16MB": 16 << 20, "16 MB": 16 << 20, " 16MB ": 16 << 20,
		"1B": 1, "1b": 1, "512kB": 512 << 10, "512KB": 512 << 10, "2GB": 2 << 30, "1TB": 1 << 40, "1tb": 1 << 40,
		"8388607TB": 8388607 << 40, "9223372036854775807": math.MaxInt64,
	}
	for in, want := range good {
		got, err := ParseMaxLag(in)
		if err != nil || got != want {
			t.Errorf("ParseMaxLag(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                     "empty",
		"  ":                   "empty",
		"-1":                   "negative",
		"MB":                   "not a whole number",
		"1.5MB":                "unknown unit",
		"16MiB":                "unknown unit",
		"16 M B":               "unknown unit",
		"8388608TB":            "too large",
		"9223372036854775808":  "too large",
		"99999999999999999999": "too large",
	}
	for in, want := range bad {
		_, err := ParseMaxLag(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMaxLag(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

func TestHealthEndpointsHEAD(t *testing.T) {
	f, ts := newTestServer(t)
	f.set(func(f *fakeBackend) { f.health = writablePrimary })
	resp, err := http.Head(ts.URL + "/primary")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /primary = %d, want 200", resp.StatusCode)
	}
}

// TestHealthCheckServerAnyPath: the primary.health.check.port server
// answers every path and method, 200 on the primary and 404 elsewhere.
func TestHealthCheckServerAnyPath(t *testing.T) {
	f := &fakeBackend{}
	s := NewHealthCheckServer(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	base := "http://" + l.Addr().String()
	paths := []string{"/", "/primary", "/standby", "/health", "/anything/at/all?x=1", "/v1/cluster"}
	roles := []struct {
		name string
		h    Health
		want int
	}{
		{"primary", writablePrimary, 200},
		{"primary without lease", with(writablePrimary, func(h *Health) { h.HoldsLease, h.Primary = false, false }), 404},
		{"writable but not named primary", with(writablePrimary, func(h *Health) { h.Primary = false }), 404},
		{"standby", streaming, 404},
		{"witness", Health{Type: cluster.Witness, HoldsLease: true}, 404},
		{"idle, database down", Health{Type: cluster.Idle}, 404},
	}
	for _, role := range roles {
		f.set(func(f *fakeBackend) { f.health = role.h })
		for _, p := range paths {
			for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
				req, _ := http.NewRequest(method, base+p, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != role.want {
					t.Errorf("%s: %s %s = %d, want %d", role.name, method, p, resp.StatusCode, role.want)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("%s: %s %s: Cache-Control %q", role.name, method, p, resp.Header.Get("Cache-Control"))
				}
				if method == http.MethodGet {
					var a HealthAnswer
					if err := json.Unmarshal(body, &a); err != nil {
						t.Errorf("%s: GET %s: body %q: %v", role.name, p, body, err)
					} else if (a.Status == "ok") != (role.want == 200) {
						t.Errorf("%s: GET %s: status %q", role.name, p, a.Status)
					}
				}
			}
		}
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Close = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

// TestSynchronousStandby checks /standby?sync and its Patroni names: a
// healthy streaming standby of the recorded synchronous set only.
func TestSynchronousStandby(t *testing.T) {
	syncStandby := with(streaming, func(h *Health) { h.Synchronous = true })
	f, ts := newTestServer(t)
	for _, tc := range []struct {
		name string
		h    Health
		path string
		want int
	}{
		{"sync standby, /sync", syncStandby, "/sync", 200},
		{"sync standby, /synchronous", syncStandby, "/synchronous", 200},
		{"sync standby, /standby?sync", syncStandby, "/standby?sync", 200},
		{"sync standby with max_lag", syncStandby, "/sync?max_lag=16MB", 200},
		{"async standby, /sync", streaming, "/sync", 503},
		{"async standby, /standby", streaming, "/standby", 200},
		{"sync but not streaming", with(syncStandby, func(h *Health) { h.WalReceiver = "" }), "/sync", 503},
		{"primary", writablePrimary, "/sync", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.set(func(f *fakeBackend) { f.health = tc.h })
			code, _, body := getAnswer(t, ts.URL+tc.path)
			if code != tc.want {
				t.Fatalf("GET %s = %d, want %d (%v)", tc.path, code, tc.want, body)
			}
			if code == 503 && stringOr(body["reason"]) == "" {
				t.Errorf("GET %s: 503 without a reason", tc.path)
			}
		})
	}
}
