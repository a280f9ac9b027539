package agent

import (
	"context"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// leaderLoop keeps the etcd leader off the primary's host. A new etcd
// leader resets every lease to TTL + election timeout, so when the primary
// node dies while its member leads, its lease lives ~2 s longer and the
// failover waits for it (DESIGN.md §2: 7.2–7.8 s instead of 3.8 s for a
// 5 s TTL). The primary's agent hands leadership to a witness if there is
// one, else to a standby.
func (a *Agent) leaderLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if rec, _ := a.currentPrimary(); rec.Node == a.self && a.member != nil {
			a.handOffLeadership(ctx)
		}
	}
}

func (a *Agent) handOffLeadership(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	leader, self, err := a.members.LeaderOf(ctx, a.member.Endpoint())
	if err != nil || leader != self {
		return
	}
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return
	}
	list, err := a.members.Members(ctx)
	if err != nil {
		return
	}
	// Prefer a live witness, then a live standby.
	var target uint64
	best := 0
	for _, m := range list {
		if m.IsLearner || m.ID == self {
			continue
		}
		for _, reg := range snap.Registrations {
			if reg.MemberID != m.ID {
				continue
			}
			ms, alive := snap.Status[reg.Address]
			score := 0
			switch {
			case alive && ms.Type == cluster.Witness:
				score = 3
			case alive && ms.Type == cluster.Standby:
				score = 2
			case alive:
				score = 1
			}
			if score > best {
				best, target = score, m.ID
			}
		}
	}
	if target == 0 {
		return
	}
	if err := a.members.MoveLeader(ctx, target); err != nil {
		a.log.Debug("cannot move the etcd leader off the primary", "err", err)
		return
	}
	a.log.Info("moved the etcd leader off the primary's host", "to", target)
}
