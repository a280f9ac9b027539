package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/syncrep"
)

// syncMemory is what the agent knows of the synchronous set
// (synchronous.mode), under a.mu.
type syncMemory struct {
	// record is the set recorded in etcd as last read; nil when none.
	record *dcs.Sync
	// applied is the synchronous_standby_names this agent last set, for
	// the set appliedSet in the epoch appliedEpoch (a restart forgets it);
	// switchLSN is the primary's position just after it was set.
	applied      string
	appliedSet   syncrep.Set
	appliedEpoch uint64
	switchLSN    cluster.LSN
	// states is each standby's sync_state on this primary
	// (pg_stat_replication), by node address.
	states map[string]string
	// lastNumSyncCheck paces check.num.sync.period; short remembers that
	// "Not enough synchronous standbys" was sent, so it is sent once.
	lastNumSyncCheck time.Time
	short            bool
	// unseenSince is when this primary last began to miss a standby of
	// its set among its streaming WAL senders.
	unseenSince map[string]time.Time
}

// syncLoop keeps the synchronous set. On the primary it makes
// synchronous_standby_names and the set recorded in etcd follow the healthy
// standbys (package syncrep has the rules); on every node it keeps the
// recorded set in memory for /standby?sync and cluster-status. It runs
// every local.period and whenever an agent publishes.
func (a *Agent) syncLoop(ctx context.Context) {
	if a.cfg.IsWitness {
		return
	}
	t := time.NewTicker(a.cfg.LocalPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.syncKick:
		}
		sctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout+time.Second)
		a.manageSync(sctx)
		cancel()
	}
}

// manageSync moves the synchronous set one step towards what it should be.
func (a *Agent) manageSync(ctx context.Context) {
	rec, _ := a.currentPrimary()
	if rec.Node != a.self || rec.Phase != dcs.PhasePromoted {
		if r, _, err := a.store.Sync(ctx); err == nil {
			a.setSyncRecord(r, nil)
		}
		return
	}
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return
	}
	a.setSyncRecord(snap.Sync, nil)
	a.mu.Lock()
	db := a.status.DB
	a.mu.Unlock()
	if snap.Primary.Node != a.self || snap.Primary.Epoch != rec.Epoch || snap.Primary.Phase != dcs.PhasePromoted ||
		!db.Up || db.InRecovery {
		return
	}
	if a.cfg.SyncMode == syncrep.Off || a.cfg.SyncMode == "" {
		a.syncOff(ctx, snap)
		a.checkNumSync(ctx)
		return
	}
	recorded := syncrep.Set{} // another epoch's record covers none of this primary's writes
	if r := snap.Sync; r != nil && r.Epoch == rec.Epoch && r.Primary == a.self {
		recorded = syncrep.Set{Members: r.Members, Quorum: r.Quorum}
	}
	senders, err := a.senders(ctx, a.localConnString())
	if err != nil {
		a.log.Warn("synchronous mode: cannot read the WAL senders", "err", err)
		return
	}
	healthy, failed, names, states := syncCandidates(snap, senders.Senders, a.self)
	a.setSyncRecord(snap.Sync, states)
	a.mu.Lock()
	mem := a.sync
	a.mu.Unlock()
	applied := recorded // after a restart: the best guess of the setting
	if mem.appliedEpoch == rec.Epoch {
		applied = mem.appliedSet
	}
	// A standby leaves the set on its own agent's word, or once this
	// primary has not seen it stream for node.timeout: a primary whose
	// postmaster dies sees its WAL senders go first and must not take that
	// for standbys gone, but a standby's WAL receiver may report streaming
	// long after a cut (wal_receiver_timeout).
	missing := a.missingSenders(applied.Members, healthy, failed)
	for _, m := range applied.Members {
		if !failed[m] && !slices.Contains(healthy, m) && !missing[m] {
			healthy = append(healthy, m)
		}
	}
	want := syncrep.Want(a.cfg.SyncMode, a.cfg.SyncNodeCount, healthy, applied, otherDatabases(snap, a.self))
	value := syncrep.StandbyNames(want, names)
	isApplied := mem.appliedEpoch == rec.Epoch && mem.applied == value
	if isApplied && recordIs(snap.Sync, rec.Epoch, a.self, want) {
		return
	}
	// First a record that covers every write acknowledged so far and every
	// write the new setting will acknowledge; then the setting; then, once
	// the new set's standbys hold every write acknowledged before the
	// change, the new set alone (package syncrep).
	rev, via := snap.SyncRev, syncrep.Via(recorded, want)
	if !recordIs(snap.Sync, rec.Epoch, a.self, via) && !recordIs(snap.Sync, rec.Epoch, a.self, want) {
		if rev, err = a.recordSync(ctx, rev, rec.Epoch, via); err != nil {
			a.log.Warn("synchronous mode: cannot record the synchronous set; the setting stays as it is", "set", via.String(), "err", err)
			return
		}
		recorded = via
	}
	if !isApplied {
		if err := a.exec.setSyncStandbyNames(ctx, a.localConnString(), value); err != nil {
			a.log.Warn("synchronous mode: cannot set synchronous_standby_names", "value", value, "err", err)
			return
		}
		// Every write acknowledged under the old setting is at or before
		// the position now.
		after, err := a.senders(ctx, a.localConnString())
		if err != nil {
			a.log.Warn("synchronous mode: cannot read the WAL senders", "err", err)
			return
		}
		senders = after
		first := mem.appliedEpoch != rec.Epoch
		a.mu.Lock()
		a.sync.applied, a.sync.appliedSet, a.sync.appliedEpoch, a.sync.switchLSN = value, want, rec.Epoch, after.CurrentLSN
		mem = a.sync
		a.mu.Unlock()
		a.notifySyncChange(ctx, applied, want, first)
	}
	if !recorded.Equal(want) {
		if !syncrep.CaughtUp(want, flushed(senders.Senders, names), mem.switchLSN) {
			return // the record stays the wider one; the next pass looks again
		}
		if _, err := a.recordSync(ctx, rev, rec.Epoch, want); err != nil {
			a.log.Warn("synchronous mode: cannot record the synchronous set; retrying", "set", want.String(), "err", err)
			return
		}
	}
	if r, _, err := a.store.Sync(ctx); err == nil {
		a.setSyncRecord(r, states)
	}
}

// flushed is each node's flushed position on this primary, by address.
func flushed(senders []postgres.Sender, names map[string]string) map[string]cluster.LSN {
	out := map[string]cluster.LSN{}
	for addr, name := range names {
		for _, s := range senders {
			if s.ApplicationName == name && s.State == "streaming" {
				out[addr] = s.FlushLSN
			}
		}
	}
	return out
}

// otherDatabases are the database nodes registered besides self.
func otherDatabases(snap dcs.Snapshot, self string) []string {
	var out []string
	for _, reg := range snap.Registrations {
		if reg.Address != self && !reg.Witness {
			out = append(out, reg.Address)
		}
	}
	return out
}

// syncOff ends a synchronous mode turned off: the primary stops waiting,
// then the record goes.
func (a *Agent) syncOff(ctx context.Context, snap dcs.Snapshot) {
	if snap.Sync == nil {
		return
	}
	if err := a.exec.setSyncStandbyNames(ctx, a.localConnString(), ""); err != nil {
		a.log.Warn("synchronous.mode=off: cannot clear synchronous_standby_names", "err", err)
		return
	}
	if _, ok, err := a.store.UpdateSync(ctx, snap.SyncRev, nil); err != nil || !ok {
		return
	}
	a.setSyncRecord(nil, nil)
	a.notify(ctx, hook.Warning, "Synchronous replication turned off",
		fmt.Sprintf("synchronous.mode=off on the primary %s: replication is asynchronous; a failover may lose what the primary acknowledged and had not sent.", a.self))
}

// recordSync writes set s as this primary's, guarded by revision rev, and
// returns the new revision.
func (a *Agent) recordSync(ctx context.Context, rev int64, epoch uint64, s syncrep.Set) (int64, error) {
	next, ok, err := a.store.UpdateSync(ctx, rev, &dcs.Sync{
		Epoch: epoch, Primary: a.self, Members: s.Members, Quorum: s.Quorum, Since: time.Now().UTC(),
	})
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, errors.New("the record changed meanwhile")
	}
	return next, nil
}

func recordIs(r *dcs.Sync, epoch uint64, primary string, s syncrep.Set) bool {
	return r != nil && r.Epoch == epoch && r.Primary == primary && r.Quorum == s.Quorum && slices.Equal(r.Members, s.Members)
}

func (a *Agent) setSyncRecord(r *dcs.Sync, states map[string]string) {
	a.mu.Lock()
	a.sync.record = r
	if states != nil || r == nil {
		a.sync.states = states
	}
	a.mu.Unlock()
}

// notifySyncChange tells of the primary going on alone (loudly), of
// synchronous standbys coming back, and of other changes of the set.
func (a *Agent) notifySyncChange(ctx context.Context, from, to syncrep.Set, first bool) {
	switch {
	case to.Quorum == 0 && from.Quorum > 0:
		a.notify(ctx, hook.Severe, "Synchronous replication suspended",
			fmt.Sprintf("No synchronous standby of %s is healthy: with synchronous.mode=on the primary acknowledges writes alone, and no standby can be promoted without losing them until one streams again.", a.self))
	case from.Quorum == 0 && to.Quorum > 0 && !first:
		a.notify(ctx, hook.Warning, "Synchronous replication resumed", fmt.Sprintf("The primary %s waits for %s.", a.self, to))
	case !from.Equal(to):
		a.notify(ctx, hook.Info, "Synchronous standbys changed", fmt.Sprintf("The primary %s waits for %s (was %s).", a.self, to, from))
	}
	a.log.Info("synchronous set", "set", to.String(), "was", from.String())
}

// syncCandidates are the standbys that may be synchronous: they stream
// from this primary (pg_stat_replication, by the application_name their
// WAL receiver gives, which is what synchronous_standby_names matches),
// their agent publishes them as a standby with the database up, and they
// may be promoted (promotable, or set-priority above 0; never
// set-priority 0). A name two standbys share cannot tell them apart, so
// neither is a candidate. failed are the standbys whose own agent says
// they cannot confirm writes: its lease is gone, its database is down or
// does not stream, or it may not be promoted. It also returns each
// standby's application_name and sync_state.
func syncCandidates(snap dcs.Snapshot, senders []postgres.Sender, self string) (healthy []string, failed map[string]bool, names, states map[string]string) {
	names, states, failed = map[string]string{}, map[string]string{}, map[string]bool{}
	count := map[string]int{}
	for _, reg := range snap.Registrations {
		if reg.Address == self || reg.Witness {
			continue
		}
		st, ok := snap.Status[reg.Address]
		names[reg.Address] = cmp.Or(st.DB.ReceiverAppName, st.AppName, reg.Address)
		count[names[reg.Address]]++
		p, hasPriority := snap.Priorities[reg.Address]
		eligible := (st.Promotable && !hasPriority) || p > 0
		if !ok || st.Type != cluster.Standby || !st.DB.Up || st.DB.WalReceiver != "streaming" || !eligible {
			failed[reg.Address] = true
		}
	}
	for addr, name := range names {
		i := slices.IndexFunc(senders, func(s postgres.Sender) bool { return s.ApplicationName == name })
		if i < 0 || count[name] > 1 {
			continue
		}
		states[addr] = senders[i].SyncState
		if senders[i].State == "streaming" && !failed[addr] {
			healthy = append(healthy, addr)
		}
	}
	return healthy, failed, names, states
}

// prepareSyncForPromotion sets the synchronous set of this standby's
// coming epoch as primary before it takes its first write: recorded in
// etcd, then applied. on: nobody until a standby streams from it; strict:
// every other database node. With synchronous.mode=off it only clears a
// setting left from an earlier synchronous mode.
func (a *Agent) prepareSyncForPromotion(ctx context.Context, rec dcs.Primary) error {
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return err
	}
	if a.cfg.SyncMode == syncrep.Off || a.cfg.SyncMode == "" {
		if snap.Sync == nil {
			return nil
		}
		return a.exec.setSyncStandbyNames(ctx, a.localConnString(), "")
	}
	if r := snap.Sync; r != nil && r.Epoch > rec.Epoch {
		return fmt.Errorf("the synchronous set belongs to epoch %d, newer than this promotion's %d", r.Epoch, rec.Epoch)
	}
	var others []string
	names := map[string]string{}
	for _, reg := range snap.Registrations {
		if reg.Address == a.self || reg.Witness {
			continue
		}
		others = append(others, reg.Address)
		if st, ok := snap.Status[reg.Address]; ok && st.AppName != "" {
			names[reg.Address] = st.AppName
		}
	}
	// Nobody is certain to hold every write yet: the old primary's are on
	// this node, and its own will be on the set once it catches up.
	if !recordIs(snap.Sync, rec.Epoch, a.self, syncrep.Set{}) {
		if _, err := a.recordSync(ctx, snap.SyncRev, rec.Epoch, syncrep.Set{}); err != nil {
			return fmt.Errorf("record the synchronous set of epoch %d: %w", rec.Epoch, err)
		}
	}
	initial := syncrep.Initial(a.cfg.SyncMode, a.cfg.SyncNodeCount, others)
	value := syncrep.StandbyNames(initial, names)
	if err := a.exec.setSyncStandbyNames(ctx, a.localConnString(), value); err != nil {
		return err
	}
	a.mu.Lock()
	a.sync.applied, a.sync.appliedSet, a.sync.appliedEpoch, a.sync.switchLSN = value, initial, rec.Epoch, 0
	a.mu.Unlock()
	return nil
}

// syncState is this node's place in the synchronous set, for /standby?sync.
func (a *Agent) inSyncSet() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.sync.record
	return r != nil && r.Quorum > 0 && slices.Contains(r.Members, a.self)
}

// checkNumSync is EFM's check of a synchronous_standby_names the user
// manages (synchronous.mode=off), every check.num.sync.period: it counts
// the listed standbys that stream and, as reconfigure.num.sync,
// reconfigure.num.sync.max and reconfigure.sync.primary say, lowers or
// raises the number to wait for or leaves synchronous mode; with too few
// standbys it notifies, once.
func (a *Agent) checkNumSync(ctx context.Context) {
	a.mu.Lock()
	due := time.Since(a.sync.lastNumSyncCheck) >= a.cfg.CheckNumSyncPeriod
	if due {
		a.sync.lastNumSyncCheck = time.Now()
	}
	a.mu.Unlock()
	if !due {
		return
	}
	value, err := a.syncNames(ctx, a.localConnString())
	if err != nil {
		a.log.Warn("check.num.sync.period: cannot read synchronous_standby_names", "err", err)
		return
	}
	names, err := syncrep.ParseNames(value)
	if err != nil || names.Num == 0 {
		a.setShort(false)
		return
	}
	senders, err := a.senders(ctx, a.localConnString())
	if err != nil {
		a.log.Warn("check.num.sync.period: cannot read the WAL senders", "err", err)
		return
	}
	available := 0
	for _, s := range senders.Senders {
		if s.State == "streaming" && names.Matches(s.ApplicationName) {
			available++
		}
	}
	next, changed, short := syncrep.Adjust(names, available, a.cfg.ReconfigureNumSync, a.cfg.ReconfigureNumSyncMax, a.cfg.ReconfigureSyncPrimary)
	if changed {
		if err := a.exec.setSyncStandbyNames(ctx, a.localConnString(), next.String()); err != nil {
			a.notify(ctx, hook.Severe, "Could not reload database configuration", fmt.Sprintf("Setting synchronous_standby_names to %q on %s: %v", next.String(), a.self, err))
			return
		}
		subject, what := "Synchronous replication reconfigured", fmt.Sprintf("now %q", next.String())
		if next.Num == 0 {
			subject, what = "Synchronous replication disabled", "cleared (reconfigure.sync.primary): the primary no longer waits for any standby"
		}
		a.notify(ctx, hook.Warning, subject, fmt.Sprintf("%d of the standbys listed in synchronous_standby_names %q stream from %s; it is %s.", available, value, a.self, what))
	}
	if short && a.setShort(true) {
		a.notify(ctx, hook.Severe, "Not enough synchronous standbys available",
			fmt.Sprintf("%d of the standbys listed in synchronous_standby_names %q stream from %s, %d are needed: commits wait. Set reconfigure.num.sync or reconfigure.sync.primary to let pgfm lower the number or leave synchronous mode.", available, next.String(), a.self, next.Num))
	} else if !short {
		a.setShort(false)
	}
}

// setShort records whether too few synchronous standbys stream, and
// reports whether that is news.
func (a *Agent) setShort(short bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	news := short && !a.sync.short
	a.sync.short = short
	return news
}

// missingSenders are the standbys of members whose own agent says they
// stream but which this primary has not seen streaming for node.timeout.
func (a *Agent) missingSenders(members, streaming []string, failed map[string]bool) map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now, since, out := time.Now(), map[string]time.Time{}, map[string]bool{}
	for _, m := range members {
		if failed[m] || slices.Contains(streaming, m) {
			continue
		}
		at, ok := a.sync.unseenSince[m]
		if !ok {
			at = now
		}
		since[m] = at
		out[m] = now.Sub(at) >= a.cfg.NodeTimeout
	}
	a.sync.unseenSince = since
	return out
}
