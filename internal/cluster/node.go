package cluster

import "time"

// Type is what a node is, in EFM's words (cluster-status "Agent Type").
type Type string

const (
	Primary Type = "Primary"
	Standby Type = "Standby"
	Witness Type = "Witness"
	// Idle: the agent runs but does not monitor its database (down at
	// start, wrong state, ...). Never a candidate for promotion.
	Idle Type = "Idle"
)

// DBState is the database column of cluster-status.
type DBState string

const (
	DBUp      DBState = "UP"
	DBDown    DBState = "DOWN"
	DBUnknown DBState = "UNKNOWN"
	DBNone    DBState = "N/A" // witness: no database
)

// AgentState is the agent column of cluster-status.
type AgentState string

const (
	AgentUp   AgentState = "UP"
	AgentDown AgentState = "DOWN"
	AgentIdle AgentState = "IDLE"
)

// DBObservation is one probe of a PostgreSQL server.
type DBObservation struct {
	Up         bool   `json:"up"`
	Error      string `json:"error,omitempty"`
	InRecovery bool   `json:"in_recovery"`
	Timeline   uint32 `json:"timeline,omitempty"`
	// CurrentLSN is pg_current_wal_lsn() on a primary.
	CurrentLSN LSN `json:"current_lsn"`
	// ReceiveLSN and ReplayLSN are pg_last_wal_receive_lsn() and
	// pg_last_wal_replay_lsn() on a standby.
	ReceiveLSN LSN `json:"receive_lsn"`
	ReplayLSN  LSN `json:"replay_lsn"`
	// WalReceiver is pg_stat_wal_receiver.status ("streaming", ...) and
	// SenderHost the host it streams from; empty when there is none.
	WalReceiver string `json:"wal_receiver,omitempty"`
	SenderHost  string `json:"sender_host,omitempty"`
	SystemID    string `json:"system_id,omitempty"`
	Version     int    `json:"server_version,omitempty"`
}

// LSN is the furthest WAL position the server has: written on a primary,
// received (or replayed, when it has received nothing by streaming) on a standby.
func (o DBObservation) LSN() LSN {
	if !o.InRecovery {
		return o.CurrentLSN
	}
	return max(o.ReceiveLSN, o.ReplayLSN)
}

// MemberStatus is what an agent publishes about itself under its lease.
type MemberStatus struct {
	Address    string        `json:"address"` // bind.address host (IP)
	BindAddr   string        `json:"bind_address"`
	AdminURL   string        `json:"admin_url"`
	Type       Type          `json:"type"`
	IdleReason string        `json:"idle_reason,omitempty"`
	Version    string        `json:"version"`
	DB         DBObservation `json:"db"`
	Promotable bool          `json:"promotable"`
	Priority   []string      `json:"priority_standbys,omitempty"`
	ObservedAt time.Time     `json:"observed_at"`
	StartedAt  time.Time     `json:"started_at"`
}

// Registration is the permanent record of a member: it stays while the
// agent is stopped and goes away only with disallow-node.
type Registration struct {
	Address  string    `json:"address"`
	BindAddr string    `json:"bind_address"`
	AdminURL string    `json:"admin_url"`
	Witness  bool      `json:"witness"`
	JoinedAt time.Time `json:"joined_at"`
	MemberID uint64    `json:"member_id"`
}
