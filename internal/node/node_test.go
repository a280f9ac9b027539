package node

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// The test cluster, seen from this node (self), at epoch 8: a failover
// replaced old with p; margin is the fence margin (config.FenceMargin).
const (
	self = "10.0.0.2"
	p    = "10.0.0.1"
	old  = "10.0.0.3"

	margin = time.Second
	ns     = time.Nanosecond
)

// t0 is "now" in every case.
var t0 = time.Date(2026, 12, 2, 8, 12, 19, 0, time.UTC)

// edit changes a base input to describe one situation.
type edit func(in *Input)

func apply(in Input, es []edit) Input {
	for _, e := range es {
		e(&in)
	}
	return in
}

// primary: this node is the promoted primary of epoch 8 (it replaced p),
// writable, its postmaster up for an hour, its lease valid for 10 s.
func primary(es ...edit) Input {
	return apply(Input{
		Self: self,
		Settings: Settings{AutoReconfigure: true, StopFailedPrimary: true, LocalRestart: true,
			FenceMargin: margin},
		Record: Record{Node: self, Previous: p, Epoch: 8, Phase: cluster.PhasePromoted},
		Local: Local{DB: cluster.DBObservation{Up: true, Timeline: 2},
			PostmasterRunning: true, PostmasterStarted: t0.Add(-time.Hour), FollowedEpoch: 7},
		Lease: Lease{Live: true, ValidUntil: t0.Add(10 * time.Second)},
	}, es)
}

// standby: p is the promoted primary of epoch 8 (it replaced old); this
// node streams from p and has followed epoch 8 already.
func standby(es ...edit) Input {
	return apply(primary(func(in *Input) {
		in.Record = Record{Node: p, Previous: old, Epoch: 8, Phase: cluster.PhasePromoted}
		in.Local.DB = streamingFrom(p)
		in.Local.FollowedEpoch = 8
	}), es)
}

// failedPrimary: this node was the primary; its database was seen to fail
// 10 s ago while its (hung) postmaster had run for an hour; a failover
// named p at epoch 8, and no failed primary was stopped since epoch 7.
func failedPrimary(es ...edit) Input {
	return apply(primary(func(in *Input) {
		in.Record = Record{Node: p, Previous: self, Epoch: 8, Phase: cluster.PhasePromoted}
		in.Local.DB = cluster.DBObservation{Error: "timeout"}
		in.Local.FailedAt = t0.Add(-10 * time.Second)
		in.Local.FailedStopEpoch = 7
	}), es)
}

func streamingFrom(host string) cluster.DBObservation {
	return cluster.DBObservation{Up: true, InRecovery: true, Timeline: 2, WalReceiver: "streaming", SenderHost: host}
}

// The edits, named after the situation they describe.

func witness(in *Input)           { in.Settings.Witness = true }
func noRecord(in *Input)          { in.Record = Record{} }
func leaseLost(in *Input)         { in.Lease.Live = false }
func leaseFenced(in *Input)       { in.Lease.Fenced = true }
func neverLeased(in *Input)       { in.Lease = Lease{} }
func fenced(in *Input)            { in.Local.Fenced = true }
func inRecovery(in *Input)        { in.Local.DB = streamingFrom(old) }
func dbDown(in *Input)            { in.Local.DB = cluster.DBObservation{Error: "connection refused"} }
func restartTried(in *Input)      { in.Local.RestartTried = true }
func vipHeld(in *Input)           { in.Settings.VIP, in.Local.VIPHeld = true, true }
func vipNotHeld(in *Input)        { in.Settings.VIP, in.Local.VIPHeld = true, false }
func noLocalRestart(in *Input)    { in.Settings.LocalRestart = false }
func noAutoReconfigure(in *Input) { in.Settings.AutoReconfigure = false }
func noStopFailed(in *Input)      { in.Settings.StopFailedPrimary = false }
func maintenance(in *Input)       { in.Settings.Maintenance = true }
func rebuild(in *Input)           { in.Settings.Rebuild = true }
func oldPrimaryData(in *Input)    { in.Local.OldPrimaryData = true }
func demoted(e uint64) edit       { return func(in *Input) { in.Local.DemotedEpoch = e } }

// isolatedStopped: this node stopped its database in epoch e when it was
// cut off from the majority (fenced, postmaster gone).
func isolatedStopped(e uint64) edit {
	return func(in *Input) {
		postmasterGone(in)
		in.Local.Fenced, in.Local.IsolatedEpoch = true, e
	}
}

// switchedOver: this node was the primary; a switchover named p at epoch 8
// and p promoted.
func switchedOver(es ...edit) Input {
	return apply(primary(func(in *Input) {
		in.Record = Record{Node: p, Previous: self, Epoch: 8, Phase: cluster.PhasePromoted, Switchover: true}
		in.Local.FollowedEpoch = 7
	}), es)
}

// writable: the database is up and out of recovery.
func writable(in *Input) { in.Local.DB = cluster.DBObservation{Up: true, Timeline: 2} }

// postmasterGone: no postmaster runs at all (it crashed).
func postmasterGone(in *Input) {
	dbDown(in)
	in.Local.PostmasterGone, in.Local.PostmasterRunning, in.Local.PostmasterStarted = true, false, time.Time{}
}

// leaseFor: the last lease granted is certainly alive until t0+d.
func leaseFor(d time.Duration) edit { return func(in *Input) { in.Lease.ValidUntil = t0.Add(d) } }

func phase(ph cluster.Phase) edit { return func(in *Input) { in.Record.Phase = ph } }
func followed(e uint64) edit      { return func(in *Input) { in.Local.FollowedEpoch = e } }
func failedStop(e uint64) edit    { return func(in *Input) { in.Local.FailedStopEpoch = e } }
func previous(n string) edit      { return func(in *Input) { in.Record.Previous = n } }

// receiver: the standby's WAL receiver is in status, connected to host.
func receiver(status, host string) edit {
	return func(in *Input) { in.Local.DB.WalReceiver, in.Local.DB.SenderHost = status, host }
}

// postmasterStarted: the running postmaster started d before the failure was seen.
func postmasterStarted(d time.Duration) edit {
	return func(in *Input) { in.Local.PostmasterStarted = in.Local.FailedAt.Add(-d) }
}

// The actions the cases expect, with the words Step gives them.
var (
	fenceStale = FenceStale{Why: "is writable but the cluster's primary is " + p, Epoch: 8, Primary: p, Started: t0.Add(-time.Hour)}
	releaseVIP = ReleaseVIP{Why: "the cluster's primary is " + p}
	stopFailed = StopFailedPrimary{Epoch: 8, Started: t0.Add(-time.Hour)}
)

func isolated(d time.Duration) Action { return FenceIsolated{Until: t0.Add(d)} }

func acts(as ...Action) []Action { return as }

type scene struct {
	name string
	in   Input
	want []Action
}

var scenes = []scene{
	// Nodes that never act.
	{"a witness never acts, even named as a writable primary whose lease is ending",
		primary(witness, vipHeld, leaseFor(0)), nil},
	{"a witness never acts, even writable with another node primary",
		standby(witness, writable, vipHeld), nil},
	{"no primary record seen yet: nothing, even writable and holding the VIP",
		primary(noRecord, vipHeld), nil},
	{"no primary record seen yet, database down: not even kept down",
		primary(noRecord, postmasterGone), nil},

	// The named, promoted primary in good health.
	{"healthy primary, no virtual.ip: nothing", primary(), nil},
	{"healthy primary holding the VIP: nothing", primary(vipHeld), nil},
	{"healthy primary without the VIP: takes it", primary(vipNotHeld), acts(TakeVIP{})},
	{"primary waiting for a rejoin (Fenced): does not take the VIP", primary(vipNotHeld, fenced), nil},
	{"lease valid exactly 2× the fence margin: too close to fencing to take the VIP",
		primary(vipNotHeld, leaseFor(2*margin)), nil},
	{"lease valid 2× the fence margin and 1 ns: takes the VIP",
		primary(vipNotHeld, leaseFor(2*margin+ns)), acts(TakeVIP{})},
	{"lease valid between 1× and 2× the margin: neither fence nor VIP",
		primary(vipNotHeld, leaseFor(3*margin/2)), nil},
	{"lease lost, last grant still valid beyond the margin: no VIP, no fence yet",
		primary(vipNotHeld, leaseLost), nil},
	{"no lease granted yet: no VIP, no fence", primary(vipNotHeld, neverLeased), nil},
	{"record names this node promoted but its database is in recovery: nothing here",
		primary(vipNotHeld, inRecovery), nil},

	// Invariant 1: the isolated primary fences itself within the margin.
	{"the primary is cut off from the majority, lease valid exactly the fence margin: fence",
		primary(leaseFor(margin)), acts(isolated(margin))},
	{"lease valid the fence margin and 1 ns: not yet",
		primary(leaseFor(margin + ns)), nil},
	{"lease already ended: fence", primary(leaseFor(-time.Minute)), acts(isolated(-time.Minute))},
	{"lease lost and its last grant within the margin: fence",
		primary(leaseLost, leaseFor(margin/2)), acts(isolated(margin / 2))},
	{"lease loss already acted on (Lease.Fenced): not fenced again",
		primary(leaseFenced, leaseFor(0)), nil},
	{"no lease granted yet (ValidUntil zero): no fence",
		primary(func(in *Input) { in.Lease = Lease{Live: true} }), nil},
	{"isolated, database in recovery: nothing to fence", primary(inRecovery, leaseFor(0)), nil},
	{"isolated, database down: nothing to fence", primary(dbDown, leaseFor(0)), nil},
	{"fence comes alone: not with the VIP release the fence does itself",
		primary(vipHeld, leaseFor(0)), acts(isolated(0))},
	{"fence comes alone: not with recording a promotion",
		primary(phase(cluster.PhasePromoting), leaseFor(0)), acts(isolated(0))},
	{"fence comes alone: even while the record says fence-failed",
		primary(phase(cluster.PhaseFenceFailed), leaseFor(0)), acts(isolated(0))},
	{"fence even when the node waits for a rejoin (Local.Fenced) but is writable",
		primary(fenced, leaseFor(0)), acts(isolated(0))},

	// EFM 4.5: an isolated primary back in the majority with nobody
	// promoted meanwhile starts again as the primary.
	{"isolated primary back with a new lease, still named in the same epoch: resumes as primary",
		primary(isolatedStopped(8), noLocalRestart), acts(ResumeAsPrimary{Epoch: 8})},
	{"resumes rather than restarting locally (primary.restart.timeout)",
		primary(isolatedStopped(8)), acts(ResumeAsPrimary{Epoch: 8})},
	{"isolated primary whose lost lease is the last one granted (no new lease yet): stays down",
		primary(isolatedStopped(8), noLocalRestart, leaseFenced), nil},
	{"isolated primary without a live lease: stays down",
		primary(isolatedStopped(8), noLocalRestart, leaseLost), nil},
	{"new lease valid exactly 2× the fence margin: too close to fencing to resume",
		primary(isolatedStopped(8), noLocalRestart, leaseFor(2*margin)), nil},
	{"new lease valid 2× the fence margin and 1 ns: resumes",
		primary(isolatedStopped(8), noLocalRestart, leaseFor(2*margin+ns)), acts(ResumeAsPrimary{Epoch: 8})},
	{"isolated in an earlier epoch: no resume",
		primary(isolatedStopped(7), noLocalRestart), nil},
	{"isolated primary whose postmaster runs again (an operator started it): no resume",
		primary(isolatedStopped(8), noLocalRestart, func(in *Input) { in.Local.PostmasterRunning = true }), nil},
	{"isolated primary replaced meanwhile (a new epoch names p): kept down, no resume",
		primary(isolatedStopped(8), func(in *Input) { in.Record = Record{Node: p, Previous: self, Epoch: 9, Phase: cluster.PhasePromoted} }),
		acts(KeepDown{})},
	{"isolated primary while a promotion of another node is under way: kept down",
		primary(isolatedStopped(8), func(in *Input) { in.Record = Record{Node: p, Previous: self, Epoch: 9, Phase: cluster.PhasePromoting} }),
		acts(KeepDown{})},

	// The primary's postmaster crashed (primary.restart.timeout).
	{"primary's postmaster gone: restart it locally", primary(postmasterGone), acts(RestartLocally{})},
	{"primary's postmaster gone, a restart tried already: no second one",
		primary(postmasterGone, restartTried), nil},
	{"primary's postmaster gone, primary.restart.timeout 0: no restart",
		primary(postmasterGone, noLocalRestart), nil},
	{"primary's postmaster gone, its lease ending: Step still says restart (the executor refuses a start without a lease)",
		primary(postmasterGone, leaseFor(0)), acts(RestartLocally{})},
	{"primary's database down but its postmaster runs (hung): no restart",
		primary(dbDown), nil},
	{"standby's postmaster gone: kept down, never restarted as a primary",
		standby(postmasterGone), acts(KeepDown{})},
	{"named but still promoting, postmaster gone: promote, not restart",
		primary(phase(cluster.PhasePromoting), postmasterGone), acts(Promote{Epoch: 8, Replacing: p})},

	// A failover named this node.
	{"failover named this standby: promote it",
		primary(phase(cluster.PhasePromoting), inRecovery), acts(Promote{Epoch: 8, Replacing: p})},
	{"failover named this node, already writable (promoted before a restart): record it",
		primary(phase(cluster.PhasePromoting)), acts(RecordPromotion{Epoch: 8})},
	{"failover named a node that waits for a rejoin: Fenced does not block the promotion",
		primary(phase(cluster.PhasePromoting), inRecovery, fenced), acts(Promote{Epoch: 8, Replacing: p})},
	{"promoting and writable: no VIP before the record says promoted",
		primary(phase(cluster.PhasePromoting), vipNotHeld), acts(RecordPromotion{Epoch: 8})},
	{"promoting with a lease ending within the margin: Step still says promote (the executor checks the lease)",
		primary(phase(cluster.PhasePromoting), inRecovery, leaseFor(0)), acts(Promote{Epoch: 8, Replacing: p})},

	// A failover named this node and failed: an operator decides.
	{"script.fence failed: wait for an operator", primary(phase(cluster.PhaseFenceFailed), inRecovery), nil},
	{"promotion failed: wait for an operator", primary(phase(cluster.PhasePromoteFailed), inRecovery), nil},
	{"promotion failed but writable: no fence of the named node",
		primary(phase(cluster.PhasePromoteFailed)), nil},
	{"promotion failed, writable, VIP free: not taken",
		primary(phase(cluster.PhasePromoteFailed), vipNotHeld), nil},
	{"fence-failed, postmaster gone: no local restart",
		primary(phase(cluster.PhaseFenceFailed), postmasterGone), nil},
	{"fence-failed, holding the VIP: the named node keeps it",
		primary(phase(cluster.PhaseFenceFailed), inRecovery, vipHeld), nil},

	// Another node is the primary and this database is writable.
	{"the old primary came back writable after a failover: fence it as stale",
		failedPrimary(writable), acts(fenceStale)},
	{"a writable standby while the new primary is still promoting: fence it as stale",
		standby(writable, phase(cluster.PhasePromoting)), acts(fenceStale)},
	{"stale and holding the VIP: release the VIP before fencing",
		failedPrimary(writable, vipHeld), acts(releaseVIP, fenceStale)},
	{"stale, waiting for a rejoin already: fenced again",
		standby(writable, fenced), acts(fenceStale)},

	// Another node is the primary and this database is down.
	{"the failed primary was replaced: stop its hung postmaster, keep it down",
		failedPrimary(), acts(stopFailed, KeepDown{})},
	{"the failed primary holds the VIP: release it first",
		failedPrimary(vipHeld), acts(releaseVIP, stopFailed, KeepDown{})},
	{"a standby's database is down: keep it down, nothing to stop",
		standby(dbDown), acts(KeepDown{})},
	{"down, but this node was not the replaced primary: no stop",
		failedPrimary(previous(old)), acts(KeepDown{})},
	{"stop.failed.primary=false: no stop", failedPrimary(noStopFailed), acts(KeepDown{})},
	{"no postmaster runs: nothing to stop", failedPrimary(postmasterGone), acts(KeepDown{})},
	{"postmaster started exactly 1 s before the failure: too close to tell, no stop",
		failedPrimary(postmasterStarted(time.Second)), acts(KeepDown{})},
	{"postmaster started 1.001 s before the failure: the one that failed, stop it",
		failedPrimary(postmasterStarted(1001 * time.Millisecond)), acts(StopFailedPrimary{Epoch: 8, Started: t0.Add(-10*time.Second - 1001*time.Millisecond)}, KeepDown{})},
	{"postmaster started by an operator after the failure: left alone",
		failedPrimary(postmasterStarted(-time.Minute)), acts(KeepDown{})},
	{"no failure seen by this agent (FailedAt zero): no stop",
		failedPrimary(func(in *Input) { in.Local.FailedAt = time.Time{} }), acts(KeepDown{})},
	{"failed primary stopped for this epoch already: not again",
		failedPrimary(failedStop(8)), acts(KeepDown{})},
	{"stopped for a later epoch (record not caught up): not again",
		failedPrimary(failedStop(9)), acts(KeepDown{})},
	{"down while the new primary is still promoting: stop and keep down all the same",
		failedPrimary(phase(cluster.PhasePromoting)), acts(stopFailed, KeepDown{})},
	{"down and waiting for a rejoin: kept down", failedPrimary(fenced, failedStop(8)), acts(KeepDown{})},

	// Another node is the primary and this database is a standby (auto.reconfigure).
	{"standby following the primary's epoch already: nothing", standby(), nil},
	{"new primary promoted, standby still on the old one: follow it",
		standby(followed(7), receiver("streaming", old)), acts(Follow{Primary: p, Epoch: 8})},
	{"new primary promoted, standby streams from it already: remember the epoch",
		standby(followed(7)), acts(Followed{Epoch: 8})},
	{"receiver connected to the primary but not streaming yet: follow",
		standby(followed(7), receiver("starting", p)), acts(Follow{Primary: p, Epoch: 8})},
	{"no WAL receiver at all: follow",
		standby(followed(7), receiver("", "")), acts(Follow{Primary: p, Epoch: 8})},
	{"standby followed a later epoch (record not caught up): nothing", standby(followed(9)), nil},
	{"auto.reconfigure=false: the standby is left as it is",
		standby(followed(7), receiver("streaming", old), noAutoReconfigure), nil},
	{"standby waiting for a rejoin: does not follow",
		standby(followed(7), receiver("streaming", old), fenced), nil},
	{"new primary named but not promoted yet: wait before following",
		standby(followed(7), receiver("streaming", old), phase(cluster.PhasePromoting)), nil},
	{"new primary's fence script failed: do not follow",
		standby(followed(7), receiver("streaming", old), phase(cluster.PhaseFenceFailed)), nil},
	{"new primary's promotion failed: do not follow",
		standby(followed(7), receiver("streaming", old), phase(cluster.PhasePromoteFailed)), nil},
	{"standby holding the VIP: release it, then follow",
		standby(followed(7), receiver("streaming", old), vipHeld), acts(releaseVIP, Follow{Primary: p, Epoch: 8})},
	{"standby holding the VIP, nothing else to do: release it",
		standby(vipHeld), acts(releaseVIP)},
	{"first record (bootstrap, epoch 1): a standby already streaming records it as followed",
		standby(func(in *Input) { in.Record = Record{Node: p, Epoch: 1, Phase: cluster.PhasePromoted} }, followed(0)),
		acts(Followed{Epoch: 1})},

	// auto.rewind / auto.basebackup: the replaced primary is rebuilt.
	{"old primary's data, down, rebuild on: rebuild once for the epoch",
		failedPrimary(postmasterGone, rebuild, oldPrimaryData), acts(Rebuild{Primary: p, Epoch: 8})},
	{"rebuild tried for this epoch already: kept down",
		failedPrimary(postmasterGone, rebuild, oldPrimaryData, func(in *Input) { in.Local.RebuiltEpoch = 8 }), acts(KeepDown{})},
	{"rebuild off: kept down", failedPrimary(postmasterGone, oldPrimaryData), acts(KeepDown{})},
	{"a standby's data directory is not rebuilt", standby(postmasterGone, rebuild), acts(KeepDown{})},
	{"postmaster still running (hung): stopped first, not rebuilt",
		failedPrimary(rebuild, oldPrimaryData), acts(stopFailed, KeepDown{})},
	{"the new primary still promoting: not rebuilt yet",
		failedPrimary(postmasterGone, rebuild, oldPrimaryData, phase(cluster.PhasePromoting)), acts(KeepDown{})},

	// Maintenance mode.
	{"maintenance: primary's postmaster gone is not restarted", primary(postmasterGone, maintenance), nil},
	{"maintenance: an isolated primary still fences itself", primary(maintenance, leaseFor(0)), acts(isolated(0))},

	// A switchover replaces this node (old primary) with p.
	{"switchover named p: the writable old primary demotes, not fences",
		switchedOver(writable, phase(cluster.PhasePromoting)), acts(Demote{Epoch: 8, Primary: p})},
	{"switchover named p: demote releases the VIP first",
		switchedOver(writable, vipHeld, phase(cluster.PhasePromoting)), acts(releaseVIP, Demote{Epoch: 8, Primary: p})},
	{"switchover promoted while still writable: a stale primary, fenced",
		switchedOver(writable), acts(fenceStale)},
	{"demoted, new primary still promoting: kept down",
		switchedOver(dbDown, demoted(8), phase(cluster.PhasePromoting)), acts(KeepDown{})},
	{"demoted, the new primary promoted: start as its standby",
		switchedOver(dbDown, demoted(8)), acts(StartAsStandby{Epoch: 8, Primary: p})},
	{"demoted for an older epoch: not started, kept down",
		switchedOver(dbDown, demoted(7)), acts(KeepDown{})},
	{"demoted but fenced since: not started",
		switchedOver(dbDown, demoted(8), fenced), acts(KeepDown{})},
	{"a failover (no switchover) that replaced this node: never started",
		switchedOver(dbDown, demoted(8), func(in *Input) { in.Record.Switchover = false }), acts(KeepDown{})},
	{"started as a standby of the new primary: followed",
		switchedOver(demoted(8), func(in *Input) { in.Local.DB = streamingFrom(p) }), acts(Followed{Epoch: 8})},
}

func TestStep(t *testing.T) {
	for _, c := range scenes {
		t.Run(c.name, func(t *testing.T) {
			got := Step(c.in, t0)
			if (len(got) > 0 || len(c.want) > 0) && !reflect.DeepEqual(got, c.want) {
				t.Errorf("actions\n got %v\nwant %v%s", got, c.want, detail(got, c.want))
			}
		})
	}
}

// detail shows the fields when the actions' words match but their values
// do not (FenceStale's String leaves out the epoch).
func detail(got, want []Action) string {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return ""
	}
	return fmt.Sprintf("\n got %#v\nwant %#v", got, want)
}

// TestStopFailedBoundaries is stop.failed.primary (which postmaster counts
// as the one that failed) at its edges.
func TestStopFailedBoundaries(t *testing.T) {
	seen := t0
	for _, c := range []struct {
		name    string
		enabled bool
		seen    time.Time
		started time.Time
		running bool
		want    bool
	}{
		{"postmaster started exactly 1 s before the failure: not stopped", true, seen, seen.Add(-time.Second), true, false},
		{"started 1 s and 1 ns before: stopped", true, seen, seen.Add(-time.Second - ns), true, true},
		{"started 1.001 s before: stopped", true, seen, seen.Add(-1001 * time.Millisecond), true, true},
		{"started at the failure: not stopped", true, seen, seen, true, false},
		{"started after the failure: not stopped", true, seen, seen.Add(time.Second), true, false},
		{"not running: not stopped", true, seen, seen.Add(-time.Hour), false, false},
		{"failure not seen: not stopped", true, time.Time{}, seen.Add(-time.Hour), true, false},
		{"stop.failed.primary disabled: not stopped", false, seen, seen.Add(-time.Hour), true, false},
	} {
		if got := StopFailed(c.enabled, c.seen, c.started, c.running); got != c.want {
			t.Errorf("%s: StopFailed = %v, want %v", c.name, got, c.want)
		}
	}
}
