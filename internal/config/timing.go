package config

import (
	"math"
	"time"
)

// Lease timing: how an agent keeps its lease of node.timeout, and how long
// the etcd leader may be gone before a primary fences itself. Pure, so the
// agent and the configuration check share one set of formulas.

// LeaseTTL is the lease etcd grants for node.timeout: whole seconds, and
// never less than 1.5 × its election timeout.
func LeaseTTL(nodeTimeout, election time.Duration) time.Duration {
	return max(time.Duration(math.Ceil(nodeTimeout.Seconds()))*time.Second, MinNodeTimeout(election))
}

// RenewPeriod is how often an agent renews a lease of ttl.
func RenewPeriod(ttl time.Duration) time.Duration { return max(ttl/5, 100*time.Millisecond) }

// FenceMargin is how long before its lease's end an isolated primary stops
// its database: room for pg_ctl to act.
func FenceMargin(ttl time.Duration) time.Duration { return min(time.Second, ttl/4) }

// LeaderLossTolerance is how long the etcd leader may be unreachable before
// the primary, whose last confirmed renewal may be a period old, reaches
// its fence margin.
func LeaderLossTolerance(ttl time.Duration) time.Duration {
	return ttl - RenewPeriod(ttl) - FenceMargin(ttl)
}

// ElectionTime bounds how long etcd takes to elect a new leader once its
// leader is gone: a follower's randomised election timeout is below twice
// dcs.election.timeout.
func ElectionTime(election time.Duration) time.Duration { return 2 * election }

// ridesOutElection reports whether a primary keeps its lease through an
// etcd leader election, and otherwise the smallest whole-second
// node.timeout that would.
func ridesOutElection(nodeTimeout, election time.Duration) (ok bool, need time.Duration) {
	ttl := LeaseTTL(nodeTimeout, election)
	if LeaderLossTolerance(ttl) > ElectionTime(election) {
		return true, ttl
	}
	for need = ttl + time.Second; LeaderLossTolerance(need) <= ElectionTime(election); need += time.Second {
	}
	return false, need
}
