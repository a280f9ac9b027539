package agent

import (
	"context"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
)

// store is what the agent needs of the cluster's shared state: dcs.Store
// on etcd, or an in-memory one in tests of the agent's flows.
type store interface {
	Close() error
	Revision(ctx context.Context) (int64, error)

	// Liveness and the coordinator election.
	GrantLease(ctx context.Context, ttl time.Duration, addr string) (*dcs.Lease, error)
	Campaign(ctx context.Context, l *dcs.Lease, addr string) (*dcs.Election, error)
	Coordinator(ctx context.Context) (string, error)
	PublishStatus(ctx context.Context, l *dcs.Lease, st cluster.MemberStatus) error
	HasStatus(ctx context.Context, addr string) (bool, error)
	StatusCount(ctx context.Context) (int64, error)
	WatchStatuses(ctx context.Context, fn func()) error

	// The primary record.
	InitPrimary(ctx context.Context, p dcs.Primary) error
	UpdatePrimary(ctx context.Context, rev int64, p dcs.Primary, guards ...dcs.Guard) (bool, error)
	UpdatePrimaryAndSync(ctx context.Context, rev int64, p dcs.Primary, sync *dcs.Sync, guards ...dcs.Guard) (bool, error)
	WatchPrimary(ctx context.Context, fn func(p dcs.Primary, rev int64)) error
	Snapshot(ctx context.Context) (dcs.Snapshot, error)

	// Identity, the allowed list and registrations.
	Bootstrap(ctx context.Context, info dcs.Info, first cluster.Registration) error
	Info(ctx context.Context) (dcs.Info, error)
	Allow(ctx context.Context, addr, by string) error
	IsAllowed(ctx context.Context, addr string) (bool, error)
	Disallow(ctx context.Context, addr string) (bool, error)
	Register(ctx context.Context, reg cluster.Registration) error
	Registration(ctx context.Context, addr string) (cluster.Registration, bool, error)
	WatchMembership(ctx context.Context, after int64, ev dcs.MembershipEvents) error

	// Operator settings: maintenance mode and set-priority.
	SetMaintenance(ctx context.Context, m *dcs.Maintenance) error
	SetPriority(ctx context.Context, addr string, p int) error
	Maintenance(ctx context.Context) (*dcs.Maintenance, error)

	// The synchronous set (synchronous.mode).
	Sync(ctx context.Context) (*dcs.Sync, int64, error)
	UpdateSync(ctx context.Context, rev int64, rec *dcs.Sync) (int64, bool, error)

	// Clean stops and stop-cluster.
	MarkCleanStop(ctx context.Context, addr string) error
	ClearCleanStop(ctx context.Context, addr string) error
	RequestStop(ctx context.Context, by string) error
}

// membership is the embedded etcd cluster's membership (dcs.Store); nil
// with an external etcd, whose members are its owner's.
type membership interface {
	Members(ctx context.Context) ([]dcs.Member, error)
	AddLearner(ctx context.Context, peerURL string) (uint64, []dcs.Member, error)
	RemoveMember(ctx context.Context, id uint64) error
	PromoteMember(ctx context.Context, id uint64) error
	LeaderOf(ctx context.Context, endpoint string) (leader, self uint64, err error)
	MoveLeader(ctx context.Context, id uint64) error
}

var (
	_ store      = (*dcs.Store)(nil)
	_ membership = (*dcs.Store)(nil)
)
