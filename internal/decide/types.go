package decide

import (
	"fmt"
	"maps"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/syncrep"
)

// DefaultMaxFailoverLag is max.failover.lag's default: 16 MiB of WAL, one
// default-sized WAL segment. A standby further behind than that, either
// from the most advanced standby or from the primary's last published
// position, is never promoted.
const DefaultMaxFailoverLag uint64 = 16 << 20

// Settings is the failover policy, filled by the coordinator from the
// properties file (and later from etcd for priorities and pause).
type Settings struct {
	AutoFailover             bool          // auto.failover
	MinimumStandbys          int           // minimum.standbys: standbys that must remain after a promotion
	MaxFailoverLag           uint64        // max.failover.lag, bytes of WAL
	PrimaryShutdownAsFailure bool          // primary.shutdown.as.failure
	NodeTimeout              time.Duration // node.timeout: older remote probes are ignored (0: no age limit)
	LocalTimeoutFinal        time.Duration // local.timeout.final: how long a primary database must stay failed
	Priority                 []string      // priority.standbys, most preferred first
	// NodePriority is set-priority's value by node: 1 first, 0 never
	// promoted, and any value above 0 overrides promotable=false.
	NodePriority map[string]int
	Paused       bool // maintenance mode: no automatic failover
	// ExternalDCS: etcd is run by someone else, and its members are not
	// the agents, so the majority that counts is etcd's (the coordinator
	// holds a lease, so it has it); the agents' own count is not checked.
	ExternalDCS bool
	// SyncMode is synchronous.mode: off, on or strict. Unless off, only a
	// standby of the recorded synchronous set that certainly holds every
	// acknowledged write is promoted (View.Sync, package syncrep).
	SyncMode string
}

// DefaultSettings are the documented defaults of the properties above.
func DefaultSettings() Settings {
	return Settings{
		SyncMode:          syncrep.Off,
		AutoFailover:      true,
		MaxFailoverLag:    DefaultMaxFailoverLag,
		NodeTimeout:       5 * time.Second,
		LocalTimeoutFinal: 2 * time.Second,
	}
}

// View is the coordinator's snapshot of the cluster: the committed spec
// (epoch, primary record, settings) and what every agent published.
type View struct {
	Settings Settings
	Epoch    uint64        // the cluster's current epoch
	Primary  PrimaryRecord // who the cluster says is primary
	// Members is keyed by node address (cluster.MemberStatus.Address) and
	// holds every registered member, the down ones included.
	Members map[string]MemberView
	// Voters is the number of voting members (etcd voters), the down ones
	// included; 0 means len(Members).
	Voters int
	// Sync is the synchronous set recorded in etcd; nil when none.
	Sync *syncrep.Set
}

// PrimaryRecord is the primary key in etcd.
type PrimaryRecord struct {
	Node     string      // address of the primary
	Epoch    uint64      // epoch that named it
	Timeline uint32      // its timeline
	LastLSN  cluster.LSN // the last WAL position it published
	Phase    cluster.Phase
	Previous string // the primary it replaced
}

// MemberView is one member as the coordinator sees it.
type MemberView struct {
	// Status is what the agent published under its lease; nil when the
	// lease is gone (agent stopped, dead or cut off for node.timeout).
	Status *cluster.MemberStatus
	// CleanStop: the agent left a "stopped cleanly" marker when it exited.
	// Meaningful only while Status is nil.
	CleanStop bool
	// Witness comes from the member's registration, so it is known while
	// the agent is down.
	Witness bool
	// RemoteDB is what other agents see of this node's database, keyed by
	// the observer's address.
	RemoteDB map[string]Probe
}

// Probe is one agent's observation of another node's database.
type Probe struct {
	cluster.DBObservation
	At time.Time // when the observer made it
}

// Memory is what Step remembers between calls. The coordinator keeps it
// in memory only: a new coordinator starts from the zero Memory, which at
// worst restarts the timers and repeats a notification.
type Memory struct {
	Epoch uint64 // the epoch the fields below belong to
	// PrimaryDBFailingSince: first Step that saw the primary's own agent
	// report its database down with no other agent reaching it.
	PrimaryDBFailingSince time.Time
	// PrimaryAgentMissingSince: first Step that saw the primary's lease gone.
	PrimaryAgentMissingSince time.Time
	// Notified holds the notifications whose condition still holds
	// ("subject|node"), so each is sent once per occurrence.
	Notified map[string]bool
}

func (m Memory) clone() Memory {
	m.Notified = maps.Clone(m.Notified)
	return m
}

// Plan is what the cluster should do now.
type Plan struct {
	Actions []Action
	Reason  string // one line for logs and cluster-status
}

// Action is one thing for the executor to do: Failover or Notify.
type Action interface {
	fmt.Stringer
	action()
}

// Failover asks the executor to commit NewEpoch naming To as primary,
// guarded by the old epoch (NewEpoch-1), and then to fence From and promote To.
type Failover struct {
	From, To string
	NewEpoch uint64
	Reason   string
	// Switchover: a planned, zero-loss swap (see Manual).
	Switchover bool
}

// Severity is EFM's notification level.
type Severity string

const (
	Info    Severity = "INFO"
	Warning Severity = "WARNING"
	Severe  Severity = "SEVERE"
)

// Notify asks the executor to log an event and send it to
// script.notification / user.email.
type Notify struct {
	Severity Severity
	Subject  string // one of the Subject constants
	Node     string // the node it is about
	Detail   string
}

// Notification subjects, in EFM's words where the concept is the same.
const (
	SubjectPrimaryAgentFailed  = "Primary agent failed, database still running"
	SubjectPrimaryAgentExited  = "Primary agent exited"
	SubjectPrimaryCannotPing   = "Primary cannot ping local database"
	SubjectStandbyAgentFailed  = "Standby agent failed"
	SubjectStandbyFailed       = "Standby failed"
	SubjectStandbyAgentExited  = "Standby agent exited"
	SubjectStandbyDBFailed     = "Standby database failed"
	SubjectStandbyCannotReach  = "Standby agent cannot reach database"
	SubjectWitnessFailure      = "Witness failure"
	SubjectWitnessAgentExited  = "Witness agent exited"
	SubjectFailoverNotOccurred = "Failover has not occurred"
	SubjectNoStandbys          = "No standbys available for promotion"
	SubjectManualFailover      = "Potential manual failover required"
	SubjectStateMismatch       = "Internal state mismatch"
)

func (Failover) action() {}
func (Notify) action()   {}

func (f Failover) String() string {
	if f.Switchover {
		return fmt.Sprintf("switchover %s -> %s epoch %d", f.From, f.To, f.NewEpoch)
	}
	return fmt.Sprintf("failover %s -> %s epoch %d", f.From, f.To, f.NewEpoch)
}

func (n Notify) String() string {
	return fmt.Sprintf("notify %s %q %s", n.Severity, n.Subject, n.Node)
}

func (n Notify) key() string { return n.Subject + "|" + n.Node }
