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

// Phase is how far the primary named by the primary record has got.
type Phase string

const (
	// PhasePromoting: a failover named the node; it has to fence (script)
	// and promote.
	PhasePromoting Phase = "promoting"
	// PhasePromoted: the node is the writable primary.
	PhasePromoted Phase = "promoted"
	// PhaseFenceFailed: script.fence failed; the cluster waits for an operator.
	PhaseFenceFailed Phase = "fence-failed"
	// PhasePromoteFailed: promotion failed; the cluster waits for an operator.
	PhasePromoteFailed Phase = "promote-failed"
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
	// ReceiverAppName is the application_name the WAL receiver gives its
	// primary (pg_stat_replication.application_name there); "" unknown.
	ReceiverAppName string `json:"receiver_application_name,omitempty"`
	SystemID        string `json:"system_id,omitempty"`
	Version         int    `json:"server_version,omitempty"`
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
	Address  string `json:"address"` // bind.address host (IP)
	BindAddr string `json:"bind_address"`
	AdminURL string `json:"admin_url"`
	DBPort   int    `json:"db_port,omitempty"`
	// AppName is the application_name this node's standby connects with
	// (application.name, else the address): what synchronous_standby_names
	// names it by.
	AppName    string        `json:"application_name,omitempty"`
	Type       Type          `json:"type"`
	IdleReason string        `json:"idle_reason,omitempty"`
	Version    string        `json:"version"`
	DB         DBObservation `json:"db"`
	Promotable bool          `json:"promotable"`
	Priority   []string      `json:"priority_standbys,omitempty"`
	ObservedAt time.Time     `json:"observed_at"`
	StartedAt  time.Time     `json:"started_at"`
	// Epoch is the latest primary record epoch this agent has seen.
	Epoch uint64 `json:"epoch,omitempty"`
	// PrimaryProbe is this agent's own probe of the primary's database
	// (not on the primary itself): how the cluster tells a dead primary
	// from a dead primary agent.
	PrimaryProbe *RemoteProbe `json:"primary_probe,omitempty"`
	// PostmasterGone: the local postmaster is known not to run (its
	// process is gone), which needs no timeout to believe.
	PostmasterGone bool `json:"postmaster_gone,omitempty"`
	// RestartingUntil: the agent is restarting its crashed primary
	// database locally (primary.restart.timeout); no failover before then.
	RestartingUntil time.Time `json:"restarting_until,omitzero"`
	// VIP is the virtual IP this node is configured with, VIPHeld whether
	// it holds it now.
	VIP     string `json:"vip,omitempty"`
	VIPHeld bool   `json:"vip_held,omitempty"`
	// Demoted is set by an old primary that stopped cleanly for the
	// switchover of that epoch: the new primary promotes once it has
	// replayed up to the stopped server's last checkpoint.
	Demoted *Demotion `json:"demoted,omitempty"`
	// SyncStates is, on a primary in synchronous mode, each standby's
	// pg_stat_replication.sync_state (quorum, async, ...) by node address.
	SyncStates map[string]string `json:"sync_states,omitempty"`
}

// Demotion is an old primary's clean stop for a switchover.
type Demotion struct {
	Epoch uint64 `json:"epoch"`
	// Checkpoint is pg_controldata's "Latest checkpoint location" of the
	// stopped server: the shutdown checkpoint, its last WAL record.
	Checkpoint LSN `json:"checkpoint"`
}

// RemoteProbe is one agent's observation of another node's database.
type RemoteProbe struct {
	Node string        `json:"node"`
	DB   DBObservation `json:"db"`
	At   time.Time     `json:"at"`
}

// Registration is the permanent record of a member: it stays while the
// agent is stopped and goes away only with disallow-node.
type Registration struct {
	Address  string    `json:"address"`
	BindAddr string    `json:"bind_address"`
	AdminURL string    `json:"admin_url"`
	DBPort   int       `json:"db_port,omitempty"`
	Witness  bool      `json:"witness"`
	JoinedAt time.Time `json:"joined_at"`
	MemberID uint64    `json:"member_id"`
}

// Report is the whole cluster as one agent sees it: what cluster-status
// and cluster-status-json print.
type Report struct {
	Cluster          string       `json:"cluster"`
	Reporter         string       `json:"reporter"` // address of the agent that answered
	GeneratedAt      time.Time    `json:"generated_at"`
	Nodes            []NodeReport `json:"nodes"`
	Allowed          []string     `json:"allowed"`
	Coordinator      string       `json:"coordinator"`
	FailoverPriority []string     `json:"failover_priority"`
	MinimumStandbys  int          `json:"minimum_standbys"`
	MissingNodes     []string     `json:"missing_nodes"`
	Messages         []string     `json:"messages"`
	// The primary record: which node the cluster names primary, by which
	// epoch, and how far its promotion has got.
	Epoch        uint64 `json:"epoch"`
	PrimaryNode  string `json:"primary_node"`
	PrimaryPhase string `json:"primary_phase"`
	// Maintenance: maintenance mode is on (no automatic failover).
	Maintenance bool `json:"maintenance"`
	// Priorities are the failover priorities set with set-priority.
	Priorities map[string]int `json:"priorities,omitempty"`
	// SyncMode is synchronous.mode as the reporting agent has it; Sync
	// the synchronous set recorded in etcd (nil when none).
	SyncMode string      `json:"synchronous_mode"`
	Sync     *SyncReport `json:"synchronous_set,omitempty"`
}

// SyncReport is the recorded synchronous set: every write the primary
// acknowledged is on Quorum of Members.
type SyncReport struct {
	Epoch   uint64   `json:"epoch"`
	Primary string   `json:"primary"`
	Members []string `json:"members"`
	Quorum  int      `json:"quorum"`
}

// NodeReport is one node's line in a Report.
type NodeReport struct {
	Address     string     `json:"address"`
	BindAddress string     `json:"bind_address"`
	Type        Type       `json:"type"`
	Agent       AgentState `json:"agent"`
	DB          DBState    `json:"db"`
	IdleReason  string     `json:"idle_reason,omitempty"`
	VIP         string     `json:"vip"`
	VIPActive   bool       `json:"vip_active"`
	// Probe is the reporting agent's own query of this node's database,
	// made while answering (EFM's "Promote Status"): primaries first, so a
	// standby at or past the primary's position is in sync.
	Probe DBObservation `json:"probe"`
	// Published is what the node's agent last published; nil when down.
	Published *MemberStatus `json:"published,omitempty"`
	// SyncState is the standby's pg_stat_replication.sync_state on the
	// primary (quorum, async, ...) as the primary last published it.
	SyncState string `json:"sync_state,omitempty"`
}
