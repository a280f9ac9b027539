package httpapi

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pgfm/pgfm/internal/pki"
)

// OperationWait bounds how long a promote request waits for the operation
// to complete before it answers with how far it got.
const OperationWait = 60 * time.Second

// maxBody bounds request bodies: the agent never reads unbounded input
// from the network.
const maxBody = 64 << 10

// Server is the agent's HTTP server.
type Server struct {
	backend Backend
	token   string
	log     *slog.Logger
	srv     *http.Server
	routes  http.Handler // every endpoint, unguarded (tests drive it)

	creds    *pki.Holder
	maxConns int
}

// DefaultMaxConnections caps admin.port's connections unless UseTLS says.
const DefaultMaxConnections = 64

// NewServer builds the handler set; token guards admin operations. Until
// UseTLS, only the load balancers' endpoints answer.
func NewServer(b Backend, token string, log *slog.Logger) *Server {
	s := &Server{backend: b, token: token, log: log, maxConns: DefaultMaxConnections}
	mux := http.NewServeMux()
	// Health endpoints for load balancers (health.go); GET also serves HEAD.
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /primary", s.primary)
	mux.HandleFunc("GET /standby", s.standby)
	mux.HandleFunc("GET /sync", s.syncStandby)
	mux.HandleFunc("GET /synchronous", s.syncStandby)
	mux.HandleFunc("GET /v1/cluster", s.report)
	mux.HandleFunc("GET /v1/node", s.node)
	mux.HandleFunc("GET /v1/replication", s.replication)
	mux.HandleFunc("POST /v1/join", s.join)
	mux.HandleFunc("POST /v1/allow", s.admin(s.allow))
	mux.HandleFunc("POST /v1/disallow", s.admin(s.disallow))
	mux.HandleFunc("POST /v1/stop-cluster", s.admin(s.stopCluster))
	mux.HandleFunc("POST /v1/resume", s.admin(s.resume))
	mux.HandleFunc("POST /v1/promote", s.admin(s.promote))
	mux.HandleFunc("POST /v1/set-priority", s.admin(s.setPriority))
	mux.HandleFunc("POST /v1/maintenance", s.admin(s.maintenance))
	mux.HandleFunc("POST /v1/create-standby", s.admin(s.createStandby))
	mux.HandleFunc("POST /v1/reset-members", s.admin(s.resetMembers))
	s.routes = mux
	s.srv = &http.Server{
		Handler:           guard(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2*OperationWait + 10*time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// UseTLS serves every endpoint to TLS clients that present a certificate
// of the cluster (creds, once set), and caps connections at maxConns.
func (s *Server) UseTLS(creds *pki.Holder, maxConns int) {
	s.creds = creds
	if maxConns > 0 {
		s.maxConns = maxConns
	}
}

func (s *Server) tlsConfig() *tls.Config {
	if s.creds == nil {
		return nil
	}
	c := s.creds.Get()
	if c == nil {
		return nil
	}
	return c.ServerConfig()
}

// Serve answers on l until Close: plain HTTP for load balancers, TLS for
// the rest (listen.go).
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(newSortingListener(l, s.tlsConfig, s.maxConns))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server, letting requests in flight finish briefly.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	rep, err := s.backend.Report(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.NodeStatus(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) replication(w http.ResponseWriter, r *http.Request) {
	rep, err := s.backend.Replication(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if !readJSON(w, r, &req) {
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if !pki.PeerNames(r.TLS, req.Address) {
		err := Errorf(http.StatusForbidden, "join request for %s: the certificate presented does not name that address; "+
			"the joining agent issues its own from the cluster key (cluster.key.file) or presents tls.cert.file, which must name its bind.address IP", req.Address)
		s.log.Warn("join refused", "from", r.RemoteAddr, "address", req.Address, "err", err)
		writeError(w, err)
		return
	}
	resp, err := s.backend.Admit(r.Context(), req, host)
	if err != nil {
		s.log.Warn("join refused", "from", r.RemoteAddr, "address", req.Address, "cluster", req.Cluster, "err", err)
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) allow(w http.ResponseWriter, r *http.Request) {
	var req AddressRequest
	if !readJSON(w, r, &req) {
		return
	}
	msg, err := s.backend.Allow(r.Context(), req.Address)
	answer(w, msg, err)
}

func (s *Server) disallow(w http.ResponseWriter, r *http.Request) {
	var req AddressRequest
	if !readJSON(w, r, &req) {
		return
	}
	msg, err := s.backend.Disallow(r.Context(), req.Address)
	answer(w, msg, err)
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	msg, err := s.backend.Resume(r.Context())
	answer(w, msg, err)
}

func (s *Server) stopCluster(w http.ResponseWriter, r *http.Request) {
	msg, err := s.backend.StopCluster(r.Context())
	answer(w, msg, err)
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	var req PromoteRequest
	if !readJSON(w, r, &req) {
		return
	}
	res, err := s.backend.Promote(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) setPriority(w http.ResponseWriter, r *http.Request) {
	var req PriorityRequest
	if !readJSON(w, r, &req) {
		return
	}
	msg, err := s.backend.SetPriority(r.Context(), req.Address, req.Priority)
	answer(w, msg, err)
}

func (s *Server) maintenance(w http.ResponseWriter, r *http.Request) {
	var req MaintenanceRequest
	if !readJSON(w, r, &req) {
		return
	}
	msg, err := s.backend.SetMaintenance(r.Context(), req.On)
	answer(w, msg, err)
}

func (s *Server) createStandby(w http.ResponseWriter, r *http.Request) {
	var req CreateStandbyRequest
	if !readJSON(w, r, &req) {
		return
	}
	msg, err := s.backend.CreateStandby(r.Context(), req)
	answer(w, msg, err)
}

func (s *Server) resetMembers(w http.ResponseWriter, r *http.Request) {
	msg, err := s.backend.ResetMembers(r.Context())
	answer(w, msg, err)
}

// admin wraps a handler that changes the cluster: it needs the token the
// agent wrote to its state directory, readable only by its own user.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		want := "Bearer " + s.token
		if s.token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			writeError(w, Errorf(http.StatusUnauthorized,
				"not authorized: admin commands must run on the node as root or as the agent's user, which can read the agent's token file"))
			return
		}
		h(w, r)
	}
}

func answer(w http.ResponseWriter, msg string, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Message{Message: msg})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = errors.New("request body too large")
	}
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeError(w, Errorf(http.StatusBadRequest, "bad request: %v", err))
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, StatusOf(err), Message{Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
