package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// The health endpoints answer load balancers and orchestrators from the
// agent's Health, which the agent keeps in memory: an answer never waits on
// etcd or on the database.
//
//	GET /health   200 when the local database is up (a witness: when the agent runs)
//	GET /primary  200 on the writable primary that holds the current lease
//	GET /standby  200 on a healthy streaming standby; ?max_lag=BYTES (or 16MB, ...)
//	              also asks for its replay lag to be at most that; ?sync
//	              asks for a standby of the recorded synchronous set
//	GET /sync     /standby?sync (Patroni's name; also /synchronous)
//
// Anything else is 503 (400 for a bad max_lag), with a small JSON body that
// says why, and Cache-Control: no-store.

// HealthAnswer is the body of every health endpoint.
type HealthAnswer struct {
	// Status is "ok" with a 200, else "unavailable" (or "not found" on the
	// health-check port).
	Status      string       `json:"status"`
	Reason      string       `json:"reason,omitempty"` // why not ok
	Type        cluster.Type `json:"type"`
	DBUp        bool         `json:"db_up"`
	InRecovery  bool         `json:"in_recovery"`
	Primary     bool         `json:"primary"`
	WalReceiver string       `json:"wal_receiver,omitempty"`
	// LagBytes is the standby's replay lag behind the primary's last
	// published position; absent when unknown.
	LagBytes *int64 `json:"lag_bytes,omitempty"`
	// MaxLagBytes echoes a /standby?max_lag limit, in bytes.
	MaxLagBytes *int64 `json:"max_lag_bytes,omitempty"`
	// Synchronous: the node is in the recorded synchronous set.
	Synchronous bool `json:"synchronous"`
}

func answerOf(h Health, ok bool, reason string) HealthAnswer {
	a := HealthAnswer{
		Status: "ok", Type: h.Type, DBUp: h.DBUp, InRecovery: h.InRecovery,
		Primary: h.Primary, WalReceiver: h.WalReceiver, Synchronous: h.Synchronous,
	}
	if !ok {
		a.Status, a.Reason = "unavailable", reason
	}
	if h.LagKnown {
		lag := h.LagBytes
		a.LagBytes = &lag
	}
	return a
}

// checkHealth is the rule of GET /health.
func checkHealth(h Health) (bool, string) {
	switch {
	case h.Type == cluster.Witness:
		return true, ""
	case !h.DBUp:
		return false, "the local database is down"
	}
	return true, ""
}

// checkPrimary is the rule of GET /primary and of the health-check port.
// The agent decides Primary; the database checks only guard against a
// Health that contradicts itself.
func checkPrimary(h Health) (bool, string) {
	switch {
	case h.Type == cluster.Witness:
		return false, "a witness has no database"
	case !h.DBUp:
		return false, "the local database is down"
	case h.InRecovery:
		return false, "the local database is in recovery (a standby)"
	case !h.HoldsLease:
		return false, "the agent holds no valid lease (cut off from the cluster's majority, or starting)"
	case !h.Primary:
		return false, "the cluster's primary record does not name this node as its promoted primary"
	}
	return true, ""
}

// checkStandby is the rule of GET /standby; maxLag < 0 means no limit.
func checkStandby(h Health, maxLag int64) (bool, string) {
	switch {
	case h.Type == cluster.Witness:
		return false, "a witness has no database"
	case h.Type == cluster.Idle:
		return false, "the agent is idle (see cluster-status for the reason)"
	case !h.DBUp:
		return false, "the local database is down"
	case !h.InRecovery:
		return false, "the local database is not in recovery (not a standby)"
	case h.Type != cluster.Standby:
		return false, fmt.Sprintf("the agent's type is %q, not Standby", h.Type)
	case h.WalReceiver == "":
		return false, "no WAL receiver runs (the standby does not stream from the primary)"
	case h.WalReceiver != "streaming":
		return false, fmt.Sprintf("the WAL receiver is %q, not streaming", h.WalReceiver)
	case maxLag < 0:
		return true, ""
	case !h.LagKnown:
		return false, "the replay lag is unknown (no replayed position, or the primary has published none)"
	case h.LagBytes > maxLag:
		return false, fmt.Sprintf("the replay lag of %d bytes exceeds max_lag (%d bytes)", h.LagBytes, maxLag)
	}
	return true, ""
}

// byteUnits are PostgreSQL's memory units, 1024-based.
var byteUnits = []struct {
	name string
	mult int64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}

// ParseMaxLag reads a max_lag value: a whole number of bytes, or one
// followed by B, kB, MB, GB or TB (1024-based, as in postgresql.conf; any
// letter case), e.g. 16MB or "512 kB".
func ParseMaxLag(s string) (int64, error) {
	const how = "give a whole number of bytes, or one followed by kB, MB, GB or TB (1024-based, as in postgresql.conf), e.g. max_lag=16777216 or max_lag=16MB"
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	switch {
	case t == "":
		return 0, fmt.Errorf("max_lag is empty; %s", how)
	case strings.HasPrefix(t, "-"):
		return 0, fmt.Errorf("max_lag %q is negative; %s", s, how)
	case num == "":
		return 0, fmt.Errorf("max_lag %q is not a whole number of bytes; %s", s, how)
	}
	mult := int64(0)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			mult = u.mult
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("max_lag %q has an unknown unit %q; %s", s, unit, how)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("max_lag %q is too large; %s", s, how)
	}
	return n * mult, nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := s.backend.Health()
	ok, why := checkHealth(h)
	writeHealth(w, ok, http.StatusServiceUnavailable, answerOf(h, ok, why))
}

func (s *Server) primary(w http.ResponseWriter, r *http.Request) {
	h := s.backend.Health()
	ok, why := checkPrimary(h)
	writeHealth(w, ok, http.StatusServiceUnavailable, answerOf(h, ok, why))
}

// syncStandby is GET /sync: /standby?sync.
func (s *Server) syncStandby(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	q.Set("sync", "")
	r.URL.RawQuery = q.Encode()
	s.standby(w, r)
}

func (s *Server) standby(w http.ResponseWriter, r *http.Request) {
	maxLag := int64(-1)
	if q := r.URL.Query(); q.Has("max_lag") {
		v, err := ParseMaxLag(q.Get("max_lag"))
		if err != nil {
			w.Header().Set("Cache-Control", "no-store")
			writeError(w, Errorf(http.StatusBadRequest, "bad request: %v", err))
			return
		}
		maxLag = v
	}
	h := s.backend.Health()
	ok, why := checkStandby(h, maxLag)
	if ok && r.URL.Query().Has("sync") && !h.Synchronous {
		ok, why = false, "the standby is not in the synchronous set recorded in etcd (asynchronous, or synchronous.mode=off)"
	}
	ans := answerOf(h, ok, why)
	if maxLag >= 0 {
		ans.MaxLagBytes = &maxLag
	}
	writeHealth(w, ok, http.StatusServiceUnavailable, ans)
}

// writeHealth answers 200 when ok, else failCode; never cached.
func writeHealth(w http.ResponseWriter, ok bool, failCode int, ans HealthAnswer) {
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusOK
	if !ok {
		code = failCode
	}
	writeJSON(w, code, ans)
}

// HealthServer is EFM 5.4's primary.health.check.port: it answers any
// request, on any path and with any method, 200 on the primary (the rule
// of GET /primary) and 404 elsewhere, so load-balancer settings made for
// EFM keep working unchanged.
type HealthServer struct {
	srv *http.Server
}

// NewHealthCheckServer builds the health-check port's server; the agent
// opens the listener (primary.health.check.port) and calls Serve.
func NewHealthCheckServer(b HealthReporter, log *slog.Logger) *HealthServer {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hl := b.Health()
		ok, why := checkPrimary(hl)
		ans := answerOf(hl, ok, why)
		if !ok {
			ans.Status = "not found"
		}
		writeHealth(w, ok, http.StatusNotFound, ans)
	})
	return &HealthServer{srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
}

// Serve answers on l until Close.
// Connections are capped as on admin.port; it speaks no TLS.
func (s *HealthServer) Serve(l net.Listener) error {
	err := s.srv.Serve(newSortingListener(l, func() *tls.Config { return nil }, DefaultMaxConnections))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server, letting requests in flight finish briefly.
func (s *HealthServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
}
