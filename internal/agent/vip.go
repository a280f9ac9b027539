package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgfm/pgfm/internal/hook"
	"github.com/pgfm/pgfm/internal/vip"
)

// vipConfig is the virtual IP this cluster moves with its primary; ok is
// false without virtual.ip (or on a witness, which never holds it).
func (a *Agent) vipConfig() (vip.Config, bool) {
	if !a.cfg.VirtualIP.IsValid() || a.cfg.IsWitness {
		return vip.Config{}, false
	}
	return vip.Config{Address: a.cfg.VirtualIP, Prefix: a.cfg.VirtualIPPrefix, Interface: a.cfg.VirtualIPInterface}, true
}

// ensureVIP makes the primary hold the virtual IP (EFM: "VIP not assigned
// to primary node" is repaired) and announces it when it takes it.
func (a *Agent) ensureVIP(ctx context.Context) {
	c, _ := a.vipConfig()
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	taken, err := a.exec.takeVIP(vctx)
	if errors.Is(err, errLease) {
		a.log.Warn("not taking the virtual IP", "vip", c, "err", err)
		return
	}
	if err != nil {
		// An address that was added but not announced (or not added
		// fully) was removed again: the next reconcile tries again.
		a.log.Error("cannot assign the virtual IP", "vip", c, "err", err)
		a.notify(ctx, hook.Severe, "Could not assign VIP", fmt.Sprintf("%s could not take %s: %v", a.self, c, err))
		return
	}
	if !taken {
		return
	}
	a.log.Info("assigned the virtual IP", "vip", c)
	a.notify(ctx, hook.Info, "Assigning VIP to node "+a.self, fmt.Sprintf("%s now holds %s.", a.self, c))
}

// releaseVIP drops the virtual IP if this node holds it (an old, isolated
// or stale primary; or EFM's "VIP assigned to non-primary node").
func (a *Agent) releaseVIP(ctx context.Context, why string) {
	c, _ := a.vipConfig()
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	released, err := a.exec.releaseVIP(vctx)
	if err != nil {
		a.log.Error("cannot release the virtual IP", "vip", c, "err", err)
		return
	}
	if !released {
		return
	}
	a.log.Warn("released the virtual IP", "vip", c, "why", why)
	a.notify(ctx, hook.Info, "Releasing VIP from node "+a.self, fmt.Sprintf("%s released %s: %s.", a.self, c, why))
}

// waitVIPGone implements check.vip.before.promotion: the address must not
// answer from another node before this one is promoted and takes it.
func (a *Agent) waitVIPGone(ctx context.Context) error {
	c, ok := a.vipConfig()
	if !ok || !a.cfg.CheckVIPBeforePromotion {
		return nil
	}
	deadline := time.Now().Add(a.cfg.CheckVIPTimeout)
	for {
		answers, err := vip.Answers(ctx, c, time.Second)
		if err == nil && !answers {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("cannot check whether virtual IP %s still answers: %v", c.Address, err)
			}
			return fmt.Errorf("virtual IP %s still answers from another node after check.vip.timeout (%s)", c.Address, a.cfg.CheckVIPTimeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sleep(ctx, 200*time.Millisecond)
	}
}
