package node

import (
	"fmt"
	"time"
)

// Action is one thing Step asks the node to do.
type Action interface{ String() string }

// FenceIsolated: the named primary may lose its lease within the fence
// margin (cut off from the majority): stop its database now
// (stop.isolated.primary) and release the virtual IP.
type FenceIsolated struct{ Until time.Time }

// FenceStale: the database is writable but another node is the primary:
// stop it; the node needs a rejoin.
type FenceStale struct {
	Why     string
	Epoch   uint64
	Primary string
	// Started is when the postmaster seen writable started: the executor
	// stops it, or any postmaster that is writable when it acts, but not
	// one started since that is not (an operator's, starting as a standby).
	Started time.Time
}

// Promote: the record names this node and it has not promoted yet: wait
// for the old primary to be out, run script.fence, promote, record it.
type Promote struct {
	Epoch     uint64
	Replacing string
}

// RecordPromotion: the named node is writable already (it promoted before
// a crash or restart): record the promotion.
type RecordPromotion struct{ Epoch uint64 }

// Follow: re-point this standby at the new primary (auto.reconfigure).
type Follow struct {
	Primary string
	Epoch   uint64
}

// Followed: the standby already streams from the primary: remember the
// epoch as followed.
type Followed struct{ Epoch uint64 }

// TakeVIP: the writable named primary with a lease well inside its margin
// takes the virtual IP.
type TakeVIP struct{}

// ReleaseVIP: this node holds the virtual IP but is not the primary.
type ReleaseVIP struct{ Why string }

// StopFailedPrimary: this node's failed primary was replaced: stop the
// postmaster that failed (stop.failed.primary), once for the epoch.
type StopFailedPrimary struct {
	Epoch uint64
	// Started is when the postmaster to stop started (postmaster.pid): the
	// one that failed. Another one running by the time the action is
	// carried out (an operator started it) is left alone.
	Started time.Time
}

// ResumeAsPrimary: this node's database was stopped because the node was
// cut off from the majority, and it is back with nobody promoted in its
// place: start it again as the primary.
type ResumeAsPrimary struct{ Epoch uint64 }

// KeepDown: the database is down and not the primary's: leave
// standby.signal so that nothing starts it writable.
type KeepDown struct{}

// Demote: a switchover replaces this primary: release the virtual IP,
// leave standby.signal pointing at the new primary, stop the database
// cleanly (its WAL senders pass every record on first) and report the
// last checkpoint, which the new primary replays before it promotes.
type Demote struct {
	Epoch   uint64
	Primary string
}

// StartAsStandby: the switchover that demoted this node completed: start
// the database, a standby of the new primary.
type StartAsStandby struct {
	Epoch   uint64
	Primary string
}

// Rebuild: this stopped old primary was replaced: rebuild it as a standby
// of the primary (auto.rewind, auto.basebackup), once per epoch.
type Rebuild struct {
	Primary string
	Epoch   uint64
}

// RestartLocally: the primary's postmaster is gone: start it again once,
// within primary.restart.timeout, before the cluster fails over.
type RestartLocally struct{}

func (a FenceIsolated) String() string {
	return "fence isolated (lease valid until " + a.Until.Format(time.RFC3339Nano) + ")"
}
func (a FenceStale) String() string { return "fence stale: " + a.Why }
func (a Promote) String() string {
	return fmt.Sprintf("promote (epoch %d, replacing %s)", a.Epoch, a.Replacing)
}
func (a RecordPromotion) String() string { return fmt.Sprintf("record promotion (epoch %d)", a.Epoch) }
func (a Follow) String() string          { return fmt.Sprintf("follow %s (epoch %d)", a.Primary, a.Epoch) }
func (a Followed) String() string        { return fmt.Sprintf("followed (epoch %d)", a.Epoch) }
func (TakeVIP) String() string           { return "take the virtual IP" }
func (a ReleaseVIP) String() string      { return "release the virtual IP: " + a.Why }
func (a StopFailedPrimary) String() string {
	return fmt.Sprintf("stop the failed primary (epoch %d)", a.Epoch)
}
func (a Demote) String() string {
	return fmt.Sprintf("demote for the switchover to %s (epoch %d)", a.Primary, a.Epoch)
}
func (a StartAsStandby) String() string {
	return fmt.Sprintf("start as a standby of %s (epoch %d)", a.Primary, a.Epoch)
}
func (a Rebuild) String() string {
	return fmt.Sprintf("rebuild as a standby of %s (epoch %d)", a.Primary, a.Epoch)
}
func (a ResumeAsPrimary) String() string {
	return fmt.Sprintf("resume as primary, nobody promoted meanwhile (epoch %d)", a.Epoch)
}
func (KeepDown) String() string       { return "keep the database down" }
func (RestartLocally) String() string { return "restart locally" }
