package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// JoinRequest is what a new agent sends a member to be admitted.
type JoinRequest struct {
	Cluster     string `json:"cluster"`
	Address     string `json:"address"`      // the joiner's bind IP
	BindAddress string `json:"bind_address"` // host:port, the etcd peer address
	Version     string `json:"version"`
	Witness     bool   `json:"witness"`
}

// JoinResponse tells the admitted agent how to start its etcd member.
type JoinResponse struct {
	Token          string `json:"token"`
	InitialCluster string `json:"initial_cluster"`
	MemberID       uint64 `json:"member_id"`
}

// AddressRequest names a node for allow-node and disallow-node.
type AddressRequest struct {
	Address string `json:"address"`
}

// PromoteRequest is `pgfm promote`.
type PromoteRequest struct {
	Switchover bool   `json:"switchover"`
	Target     string `json:"target,omitempty"` // the standby to promote; "" lets the cluster choose
	NoScripts  bool   `json:"no_scripts,omitempty"`
	Quiet      bool   `json:"quiet,omitempty"`
	// Force: in synchronous mode, promote a standby that may lack
	// acknowledged writes.
	Force bool `json:"force,omitempty"`
}

// Step is one step of an operation and when it was seen done.
type Step struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
	// After is the time from the operation's start.
	After Duration `json:"after"`
}

// PromoteResult says how a promote or switchover went.
type PromoteResult struct {
	Done       bool   `json:"done"` // completed; false: failed or still under way
	Switchover bool   `json:"switchover"`
	From       string `json:"from"`
	To         string `json:"to"`
	Epoch      uint64 `json:"epoch"`
	Outcome    string `json:"outcome"` // one line for people
	Steps      []Step `json:"steps"`
}

// Duration is a time.Duration that reads as text ("1.2s") in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).Round(time.Millisecond).String() + `"`), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return fmt.Errorf("duration %s: want a quoted duration", s)
	}
	v, err := time.ParseDuration(s[1 : len(s)-1])
	*d = Duration(v)
	return err
}

// CreateStandbyRequest is `pgfm create-standby`.
type CreateStandbyRequest struct {
	Slot   string `json:"slot,omitempty"`
	WalDir string `json:"waldir,omitempty"`
	// DryRun: only say what would be done (-prompt shows it first).
	DryRun bool `json:"dry_run,omitempty"`
}

// PriorityRequest is `pgfm set-priority`.
type PriorityRequest struct {
	Address  string `json:"address"`
	Priority int    `json:"priority"`
}

// MaintenanceRequest is `pgfm maintenance on|off`.
type MaintenanceRequest struct {
	On bool `json:"on"`
}

// Message is a plain answer to an admin operation.
type Message struct {
	Message string `json:"message"`
}

// Health is the local agent's view for load balancers, taken from what the
// agent keeps in memory (its last observation of the database, the last
// primary record it saw and its lease), never from a request to etcd.
type Health struct {
	Type       cluster.Type `json:"type"`
	DBUp       bool         `json:"db_up"`
	InRecovery bool         `json:"in_recovery"`
	// HoldsLease: the agent holds a lease that is certainly alive now.
	HoldsLease bool `json:"holds_lease"`
	// Primary: this node is the writable primary that holds the current
	// lease: its database is up and not in recovery, the primary record
	// names it with phase promoted, and its lease is valid now. The agent
	// decides it; GET /primary and the health-check port only report it.
	Primary bool `json:"primary"`
	// WalReceiver is pg_stat_wal_receiver.status on a standby ("streaming").
	WalReceiver string `json:"wal_receiver,omitempty"`
	// LagBytes is how far this standby's replayed WAL is behind the last
	// position the primary published (0 when at or past it); meaningful
	// only when LagKnown (a standby, and both positions known).
	LagBytes int64 `json:"lag_bytes"`
	LagKnown bool  `json:"lag_known"`
	// Synchronous: this node is in the synchronous set recorded in etcd
	// (synchronous.mode), as the agent last read it.
	Synchronous bool `json:"synchronous"`
	// ObservedAt is when the agent last observed its database.
	ObservedAt time.Time `json:"observed_at,omitzero"`
}

// ReplicationReport is `pgfm replication-status`: the cluster's standbys
// as the primary's WAL senders (pg_stat_replication) show them, queried
// from the primary's database while answering.
type ReplicationReport struct {
	Cluster     string    `json:"cluster"`
	Reporter    string    `json:"reporter"` // address of the agent that answered
	GeneratedAt time.Time `json:"generated_at"`
	// Primary is the node the primary record names, with its epoch and
	// phase; CurrentLSN its pg_current_wal_lsn(), which lags are measured from.
	Primary      string      `json:"primary"`
	Epoch        uint64      `json:"epoch"`
	PrimaryPhase string      `json:"primary_phase"`
	CurrentLSN   cluster.LSN `json:"current_lsn"`
	// Standbys are every registered database node but the primary, by
	// address, streaming or not.
	Standbys []StandbyReplication `json:"standbys"`
	// Others are WAL senders to no registered node (pg_basebackup,
	// pg_receivewal, a standby outside the cluster); Node is "" in them.
	Others []StandbyReplication `json:"others"`
}

// StandbyReplication is one standby's line in a ReplicationReport.
type StandbyReplication struct {
	Node string `json:"node"`
	// Upstream is the host the standby streams from, as its WAL receiver
	// names it (else the primary, for one the primary streams to).
	Upstream string `json:"upstream"`
	// Connected: the primary has a WAL sender for it; State and the
	// LSNs below are that sender's (pg_stat_replication).
	Connected bool `json:"connected"`
	// State is pg_stat_replication.state (streaming, catchup, ...), or
	// StateNotConnected.
	State     string      `json:"state"`
	SyncState string      `json:"sync_state"`
	SentLSN   cluster.LSN `json:"sent_lsn"`
	WriteLSN  cluster.LSN `json:"write_lsn"`
	FlushLSN  cluster.LSN `json:"flush_lsn"`
	ReplayLSN cluster.LSN `json:"replay_lsn"`
	// LagBytes is the primary's current WAL position minus the standby's
	// replay position (its own, when not connected); null when unknown.
	LagBytes *int64 `json:"lag_bytes"`
	// LagSeconds is pg_stat_replication.replay_lag; null when PostgreSQL
	// shows none (caught up and idle for a while, or not connected).
	LagSeconds *float64 `json:"lag_seconds"`
	// Slot is the replication slot the sender streams through, if any.
	Slot            string `json:"slot"`
	PID             int    `json:"pid,omitempty"` // the WAL sender's
	ClientAddr      string `json:"client_addr,omitempty"`
	ApplicationName string `json:"application_name,omitempty"`
	// Detail says why a standby is not connected, as far as known.
	Detail string `json:"detail,omitempty"`
}

// StateNotConnected is the state of a standby the primary has no WAL
// sender for.
const StateNotConnected = "not connected"

// Streaming reports whether s streams from the primary.
func (s StandbyReplication) Streaming() bool { return s.Connected && s.State == "streaming" }

// HealthReporter is what the health endpoints need: the agent's Health.
// Every Backend is one.
type HealthReporter interface {
	Health() Health
}

// Backend is what the server needs from the agent.
type Backend interface {
	Report(ctx context.Context) (cluster.Report, error)
	NodeStatus(ctx context.Context) (cluster.MemberStatus, error)
	Health() Health
	Admit(ctx context.Context, req JoinRequest, remoteIP string) (JoinResponse, error)
	Allow(ctx context.Context, addr string) (string, error)
	Disallow(ctx context.Context, addr string) (string, error)
	StopCluster(ctx context.Context) (string, error)
	Resume(ctx context.Context) (string, error)
	Promote(ctx context.Context, req PromoteRequest) (PromoteResult, error)
	SetPriority(ctx context.Context, addr string, priority int) (string, error)
	SetMaintenance(ctx context.Context, on bool) (string, error)
	Replication(ctx context.Context) (ReplicationReport, error)
	CreateStandby(ctx context.Context, req CreateStandbyRequest) (string, error)
	ResetMembers(ctx context.Context) (string, error)
}

// Error is an error with the HTTP status the server answers with; its
// message is shown to the user as is, so it says how to fix the problem.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Errorf makes an Error.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf is the HTTP status for err: its own, or 500.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}
