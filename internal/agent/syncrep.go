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
	// the epoch appliedEpoch (a promotion or a restart forgets it).
	applied      string
	appliedEpoch uint64
	// states is each standby's sync_state on this primary
	// (pg_stat_replication), by node address.
	states map[string]string
	// lastNumSyncCheck paces check.num.sync.period; short remembers that
	// "Not enough synchronous standbys" was sent, so it is sent once.
	lastNumSyncCheck time.Time
	short            bool
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
	current := syncrep.Set{}
	if r := snap.Sync; r != nil && r.Epoch == rec.Epoch && r.Primary == a.self {
		current = syncrep.Set{Members: r.Members, Quorum: r.Quorum}
	}
	senders, err := a.senders(ctx, a.localConnString())
	if err != nil {
		a.log.Warn("synchronous mode: cannot read the WAL senders", "err", err)
		return
	}
	healthy, names, states := syncCandidates(snap, senders.Senders, a.self)
	a.setSyncRecord(snap.Sync, states)
	want := syncrep.Want(a.cfg.SyncMode, a.cfg.SyncNodeCount, healthy, current)
	value := syncrep.StandbyNames(want, names)
	a.mu.Lock()
	applied := a.sync.appliedEpoch == rec.Epoch && a.sync.applied == value
	a.mu.Unlock()
	rev, recorded := snap.SyncRev, recordIs(snap.Sync, rec.Epoch, a.self, want)
	if applied && recorded {
		return
	}
	// Record a set that covers both the old and the new setting first, so
	// that every acknowledged write stays on Quorum members of the record
	// while the setting changes; then the new set alone.
	if via := syncrep.Via(current, want); !recorded && !recordIs(snap.Sync, rec.Epoch, a.self, via) {
		if rev, err = a.recordSync(ctx, rev, rec.Epoch, via); err != nil {
			a.log.Warn("synchronous mode: cannot record the synchronous set; the setting stays as it is", "set", via.String(), "err", err)
			return
		}
		recorded = via.Equal(want)
	}
	if err := a.exec.setSyncStandbyNames(ctx, a.localConnString(), value); err != nil {
		a.log.Warn("synchronous mode: cannot set synchronous_standby_names", "value", value, "err", err)
		return
	}
	a.mu.Lock()
	a.sync.applied, a.sync.appliedEpoch = value, rec.Epoch
	a.mu.Unlock()
	if !recorded {
		if _, err := a.recordSync(ctx, rev, rec.Epoch, want); err != nil {
			a.log.Warn("synchronous mode: cannot record the narrowed synchronous set; retrying", "set", want.String(), "err", err)
			return
		}
	}
	if r, _, err := a.store.Sync(ctx); err == nil {
		a.setSyncRecord(r, states)
	}
	a.notifySyncChange(ctx, current, want, snap.Sync == nil || snap.Sync.Epoch != rec.Epoch)
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
	case to.Quorum == 0 && (from.Quorum > 0 || first):
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
// neither is a candidate. It also returns each standby's
// application_name and sync_state.
func syncCandidates(snap dcs.Snapshot, senders []postgres.Sender, self string) (healthy []string, names, states map[string]string) {
	names, states = map[string]string{}, map[string]string{}
	count := map[string]int{}
	for addr, st := range snap.Status {
		if addr == self || st.Type == cluster.Witness {
			continue
		}
		names[addr] = cmp.Or(st.DB.ReceiverAppName, st.AppName, addr)
		count[names[addr]]++
	}
	for addr, name := range names {
		st := snap.Status[addr]
		i := slices.IndexFunc(senders, func(s postgres.Sender) bool { return s.ApplicationName == name })
		if i < 0 || count[name] > 1 {
			continue
		}
		states[addr] = senders[i].SyncState
		p, hasPriority := snap.Priorities[addr]
		eligible := (st.Promotable && !hasPriority) || p > 0
		if senders[i].State == "streaming" && st.Type == cluster.Standby && st.DB.Up && eligible {
			healthy = append(healthy, addr)
		}
	}
	return healthy, names, states
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
	initial := syncrep.Initial(a.cfg.SyncMode, a.cfg.SyncNodeCount, others)
	if !recordIs(snap.Sync, rec.Epoch, a.self, initial) {
		if _, err := a.recordSync(ctx, snap.SyncRev, rec.Epoch, initial); err != nil {
			return fmt.Errorf("record the synchronous set %s: %w", initial, err)
		}
	}
	value := syncrep.StandbyNames(initial, names)
	if err := a.exec.setSyncStandbyNames(ctx, a.localConnString(), value); err != nil {
		return err
	}
	a.mu.Lock()
	a.sync.applied, a.sync.appliedEpoch = value, rec.Epoch
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
