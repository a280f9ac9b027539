// Package node decides what one node must do to its own database and to
// the virtual IP, from what it observes, the primary record and its lease.
// It is the node-side twin of package decide: pure, with no I/O, so every
// case is a table test; the agent carries the actions out.
package node

import (
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Record is the part of the primary record a node acts on.
type Record struct {
	Node     string // the named primary; "" before the first record is seen
	Previous string // the primary it replaced
	Epoch    uint64
	Phase    cluster.Phase
	// Switchover: the record names Node in a planned swap with Previous.
	Switchover bool
}

// Local is what the node knows of itself.
type Local struct {
	DB cluster.DBObservation
	// PostmasterGone: no postmaster runs (no postmaster.pid, or its
	// process is dead), as opposed to one that does not answer.
	PostmasterGone bool
	// PostmasterRunning and PostmasterStarted: a postmaster runs by its
	// postmaster.pid, started then.
	PostmasterRunning bool
	PostmasterStarted time.Time
	// FailedAt is when the database was seen to fail (idle since); zero
	// when it has not failed.
	FailedAt time.Time
	// Fenced: the database was stopped as stale or isolated and the node
	// waits for a rejoin (or for a new failover to name it).
	Fenced bool
	// FollowedEpoch is the last epoch this standby re-pointed itself for.
	FollowedEpoch uint64
	// FailedStopEpoch is the last epoch whose failed primary (this node)
	// was stopped (stop.failed.primary).
	FailedStopEpoch uint64
	// RestartTried: one local restart was tried for this crash already.
	RestartTried bool
	// VIPHeld: this node holds the virtual IP now.
	VIPHeld bool
	// DemotedEpoch is the last switchover epoch for which this node, the
	// old primary, stopped its database cleanly as a standby-to-be.
	DemotedEpoch uint64
	// OldPrimaryData: the stopped data directory was last a primary's
	// (pg_controldata), so it cannot simply start as a standby.
	OldPrimaryData bool
	// RebuiltEpoch is the last epoch for which a rebuild was tried.
	RebuiltEpoch uint64
	// IsolatedEpoch is the epoch in which this node, the named primary,
	// stopped its database because it was cut off from the majority
	// (stop.isolated.primary); 0 once it runs again.
	IsolatedEpoch uint64
}

// Lease is the state of the agent's etcd lease.
type Lease struct {
	// Live: a lease is held now (not lost, not revoked).
	Live bool
	// ValidUntil is how long the last lease granted is certainly alive
	// anywhere; zero before the first grant.
	ValidUntil time.Time
	// Fenced: the loss of this lease was acted on already.
	Fenced bool
}

// validFor reports whether the lease is certainly alive for d after now.
func (l Lease) validFor(now time.Time, d time.Duration) bool {
	return l.Live && now.Add(d).Before(l.ValidUntil)
}

// Settings are the properties the decisions depend on.
type Settings struct {
	Witness           bool
	AutoReconfigure   bool          // auto.reconfigure
	StopFailedPrimary bool          // stop.failed.primary
	LocalRestart      bool          // primary.restart.timeout > 0
	FenceMargin       time.Duration // config.FenceMargin(node.timeout)
	VIP               bool          // virtual.ip is set
	// Maintenance: the cluster is in maintenance mode, so the agent does
	// not restart its primary's database either.
	Maintenance bool
	// Rebuild: auto.rewind or auto.basebackup.
	Rebuild bool
}

// Input is everything Step decides from.
type Input struct {
	Self     string
	Settings Settings
	Record   Record
	Local    Local
	Lease    Lease
}

// Step returns what the node must do now, in order. It is called again
// after every change, and every action is idempotent, so a node that
// restarts simply resumes.
func Step(in Input, now time.Time) []Action {
	s, rec, loc := in.Settings, in.Record, in.Local
	if s.Witness || rec.Node == "" {
		return nil
	}
	db := loc.DB
	writable := db.Up && !db.InRecovery
	named := rec.Node == in.Self
	var acts []Action

	// Invariant 1: a named primary whose lease may end within the margin
	// stops writing before anyone else can be promoted.
	if named && writable && !in.Lease.ValidUntil.IsZero() && !in.Lease.Fenced &&
		!now.Add(s.FenceMargin).Before(in.Lease.ValidUntil) {
		return []Action{FenceIsolated{Until: in.Lease.ValidUntil}}
	}
	if !named && loc.VIPHeld {
		acts = append(acts, ReleaseVIP{Why: "the cluster's primary is " + rec.Node})
	}
	switch {
	case named && rec.Phase == cluster.PhasePromoting && writable:
		acts = append(acts, RecordPromotion{Epoch: rec.Epoch}) // promoted before a crash or restart
	case named && rec.Phase == cluster.PhasePromoting:
		acts = append(acts, Promote{Epoch: rec.Epoch, Replacing: rec.Previous})
	case named && rec.Phase == cluster.PhasePromoted:
		switch {
		case loc.IsolatedEpoch == rec.Epoch && rec.Epoch != 0 && !db.Up && !loc.PostmasterRunning &&
			!in.Lease.Fenced && in.Lease.validFor(now, 2*s.FenceMargin):
			// Back in the majority with a new lease and still the named
			// primary of the same epoch: nobody was promoted meanwhile
			// (that takes a new epoch first), so it starts again as the
			// primary (EFM 4.5). Twice the margin, as for the address: it
			// must not fence itself again at once.
			acts = append(acts, ResumeAsPrimary{Epoch: rec.Epoch})
		case loc.PostmasterGone && s.LocalRestart && !loc.RestartTried && !s.Maintenance:
			acts = append(acts, RestartLocally{})
		}
		// Only a primary that will not fence itself any moment holds the
		// address: twice the fence margin.
		if writable && s.VIP && !loc.VIPHeld && !loc.Fenced && in.Lease.validFor(now, 2*s.FenceMargin) {
			acts = append(acts, TakeVIP{})
		}
	case named:
		// fence-failed or promote-failed: the cluster waits for an operator.
	case rec.Switchover && rec.Previous == in.Self && rec.Phase == cluster.PhasePromoting && writable:
		// A planned swap: stop cleanly, so every acknowledged write
		// reaches the new primary, and come back as its standby.
		acts = append(acts, Demote{Epoch: rec.Epoch, Primary: rec.Node})
	case rec.Switchover && rec.Previous == in.Self && loc.DemotedEpoch == rec.Epoch && !db.Up && !loc.Fenced:
		if rec.Phase == cluster.PhasePromoted {
			acts = append(acts, StartAsStandby{Epoch: rec.Epoch, Primary: rec.Node})
		} else {
			acts = append(acts, KeepDown{})
		}
	case writable:
		acts = append(acts, FenceStale{Why: "is writable but the cluster's primary is " + rec.Node, Epoch: rec.Epoch, Primary: rec.Node, Started: loc.PostmasterStarted})
	case !db.Up:
		if rec.Previous == in.Self && loc.FailedStopEpoch < rec.Epoch &&
			StopFailed(s.StopFailedPrimary, loc.FailedAt, loc.PostmasterStarted, loc.PostmasterRunning) {
			acts = append(acts, StopFailedPrimary{Epoch: rec.Epoch, Started: loc.PostmasterStarted})
		}
		if s.Rebuild && loc.OldPrimaryData && !loc.PostmasterRunning && rec.Phase == cluster.PhasePromoted && loc.RebuiltEpoch < rec.Epoch {
			acts = append(acts, Rebuild{Primary: rec.Node, Epoch: rec.Epoch})
		} else {
			// A database that is down stays unable to come back writable.
			acts = append(acts, KeepDown{})
		}
	case rec.Phase == cluster.PhasePromoted && !loc.Fenced && s.AutoReconfigure && rec.Epoch > loc.FollowedEpoch:
		if db.SenderHost == rec.Node && db.WalReceiver == "streaming" {
			acts = append(acts, Followed{Epoch: rec.Epoch})
		} else {
			acts = append(acts, Follow{Primary: rec.Node, Epoch: rec.Epoch})
		}
	}
	return acts
}

// StopFailed (stop.failed.primary, EFM's meaning): the running postmaster
// is the one that failed when it started more than a second
// (postmaster.pid's resolution) before the failure was seen; one an
// operator started since is left alone.
func StopFailed(enabled bool, failureSeen, postmasterStarted time.Time, running bool) bool {
	return enabled && running && !failureSeen.IsZero() && postmasterStarted.Add(time.Second).Before(failureSeen)
}
