package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/testenv"
)

func reg(addr string) cluster.Registration {
	return cluster.Registration{Address: addr, BindAddr: addr + ":7800", AdminURL: "http://" + addr + ":7809", DBPort: 5432,
		JoinedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), MemberID: 7}
}

// TestStore runs every case against one etcd member; each subtest uses its
// own cluster name, so its keys are apart from the others'.
func TestStore(t *testing.T) {
	cli := testenv.StartEtcd(t)
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s *Store)
	}{
		{"Bootstrap", testBootstrap},
		{"AllowDisallow", testAllowDisallow},
		{"Registration", testRegistration},
		{"PublishStatusUnderLease", testPublishStatus},
		{"Snapshot", testSnapshot},
		{"Coordinator", testCoordinator},
		{"RequestStop", testRequestStop},
		{"ClustersApart", testClustersApart},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tc.fn(t, ctx, New(cli, strings.ToLower(tc.name)))
		})
	}
}

func testBootstrap(t *testing.T, ctx context.Context, s *Store) {
	if _, err := s.Info(ctx); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Info before bootstrap: %v", err)
	}
	info := Info{Name: "c", Token: "tok-1", CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), CreatedBy: "10.0.0.1"}
	if err := s.Bootstrap(ctx, info, reg("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Info(ctx)
	if err != nil || got != info {
		t.Errorf("Info = %+v, %v; want %+v", got, err, info)
	}
	if ok, err := s.IsAllowed(ctx, "10.0.0.1"); err != nil || !ok {
		t.Errorf("first member allowed = %v, %v", ok, err)
	}
	if r, ok, err := s.Registration(ctx, "10.0.0.1"); err != nil || !ok || r != reg("10.0.0.1") {
		t.Errorf("first member registration = %+v, %v, %v", r, ok, err)
	}

	// A second bootstrap, even by another node, changes nothing.
	err = s.Bootstrap(ctx, Info{Name: "c", Token: "tok-2"}, reg("10.0.0.2"))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Bootstrap = %v, want ErrExists", err)
	}
	if got, _ := s.Info(ctx); got.Token != "tok-1" {
		t.Errorf("second bootstrap changed the token to %q", got.Token)
	}
	if ok, _ := s.IsAllowed(ctx, "10.0.0.2"); ok {
		t.Error("second bootstrap allowed its node")
	}
	if _, ok, _ := s.Registration(ctx, "10.0.0.2"); ok {
		t.Error("second bootstrap registered its node")
	}
}

func testAllowDisallow(t *testing.T, ctx context.Context, s *Store) {
	const addr = "10.0.0.5"
	if ok, err := s.IsAllowed(ctx, addr); err != nil || ok {
		t.Fatalf("allowed before Allow: %v, %v", ok, err)
	}
	for _, by := range []string{"first", "second"} {
		if err := s.Allow(ctx, addr, by); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.IsAllowed(ctx, addr); err != nil || !ok {
		t.Fatalf("allowed after Allow: %v, %v", ok, err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Allowed) != 1 || snap.Allowed[0].Address != addr || snap.Allowed[0].AddedBy != "first" {
		t.Errorf("after two Allows: %+v; want one entry, kept from the first", snap.Allowed)
	}
	if ok, _ := s.IsAllowed(ctx, "10.0.0.50"); ok {
		t.Error("IsAllowed matched a prefix of another address")
	}

	// Disallow removes the allowed entry and the registration.
	if err := s.Register(ctx, reg(addr)); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Disallow(ctx, addr)
	if err != nil || !removed {
		t.Fatalf("first Disallow = %v, %v; want true", removed, err)
	}
	if ok, _ := s.IsAllowed(ctx, addr); ok {
		t.Error("still allowed after Disallow")
	}
	if _, ok, _ := s.Registration(ctx, addr); ok {
		t.Error("still registered after Disallow")
	}
	removed, err = s.Disallow(ctx, addr)
	if err != nil || removed {
		t.Errorf("second Disallow = %v, %v; want false", removed, err)
	}

	// A registered node that is no longer allowed is still removed.
	if err := s.Register(ctx, reg("10.0.0.6")); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.Disallow(ctx, "10.0.0.6"); err != nil || !removed {
		t.Errorf("Disallow of a registered-only node = %v, %v", removed, err)
	}
}

func testRegistration(t *testing.T, ctx context.Context, s *Store) {
	if _, ok, err := s.Registration(ctx, "10.0.0.1"); err != nil || ok {
		t.Fatalf("absent registration: ok %v, err %v", ok, err)
	}
	r := reg("10.0.0.1")
	r.Witness = true
	if err := s.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Registration(ctx, "10.0.0.1")
	if err != nil || !ok || got != r {
		t.Errorf("Registration = %+v, %v, %v; want %+v", got, ok, err, r)
	}
	// Register overwrites (a restarted member records its new ID).
	r.MemberID = 99
	if err := s.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Registration(ctx, "10.0.0.1"); got.MemberID != 99 {
		t.Errorf("MemberID after re-Register = %d", got.MemberID)
	}
	// An undecodable record is an error, not a silent empty registration.
	if _, err := s.cli.Put(ctx, s.NodeKey("10.0.0.2"), "garbage"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Registration(ctx, "10.0.0.2"); err == nil || ok {
		t.Errorf("garbage registration: ok %v, err %v", ok, err)
	}
}

func testPublishStatus(t *testing.T, ctx context.Context, s *Store) {
	lease, err := s.cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	st := cluster.MemberStatus{Address: "10.0.0.1", Type: cluster.Standby, Promotable: true,
		DB: cluster.DBObservation{Up: true, InRecovery: true, ReplayLSN: 0x3000060}}
	if err := s.PublishStatus(ctx, &Lease{cli: s.cli, id: lease.ID}, st); err != nil {
		t.Fatal(err)
	}
	r, err := s.cli.Get(ctx, s.StatusKey("10.0.0.1"))
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("status key: %v, %v", r, err)
	}
	if r.Kvs[0].Lease != int64(lease.ID) {
		t.Errorf("status key lease = %d, want %d", r.Kvs[0].Lease, lease.ID)
	}
	if n, err := s.StatusCount(ctx); err != nil || n != 1 {
		t.Errorf("StatusCount = %d, %v; want 1", n, err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Status["10.0.0.1"]; got.Type != cluster.Standby || got.DB.ReplayLSN != 0x3000060 || !got.Promotable {
		t.Errorf("snapshot status = %+v", got)
	}

	if _, err := s.cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := s.StatusCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("status still published after the lease was revoked (count %d)", n)
		}
	}
	if snap, _ := s.Snapshot(ctx); len(snap.Status) != 0 {
		t.Errorf("snapshot still has statuses: %+v", snap.Status)
	}
}

func testSnapshot(t *testing.T, ctx context.Context, s *Store) {
	info := Info{Name: "snapshot", Token: "tok", CreatedBy: "10.0.0.10"}
	if err := s.Bootstrap(ctx, info, reg("10.0.0.10")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.0.0.3", "10.0.0.2"} {
		if err := s.Allow(ctx, a, "test"); err != nil {
			t.Fatal(err)
		}
		if err := s.Register(ctx, reg(a)); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := s.cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cli.Revoke(context.Background(), lease.ID) })
	for _, st := range []cluster.MemberStatus{
		{Address: "10.0.0.2", Type: cluster.Standby},
		{Address: "10.0.0.10", Type: cluster.Primary, DB: cluster.DBObservation{Up: true, CurrentLSN: 0x5000000}},
	} {
		if err := s.PublishStatus(ctx, &Lease{cli: s.cli, id: lease.ID}, st); err != nil {
			t.Fatal(err)
		}
	}
	garbage := s.StatusKey("x")
	if _, err := s.cli.Put(ctx, garbage, "{not json"); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestStop(ctx, "10.0.0.10"); err != nil { // a key Snapshot does not decode
		t.Fatal(err)
	}

	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatalf("one garbage value broke the snapshot: %v", err)
	}
	if snap.Revision == 0 {
		t.Error("Revision is 0")
	}
	if snap.Info != info {
		t.Errorf("Info = %+v, want %+v", snap.Info, info)
	}
	var allowed, regs []string
	for _, a := range snap.Allowed {
		allowed = append(allowed, a.Address)
	}
	for _, r := range snap.Registrations {
		regs = append(regs, r.Address)
	}
	// Sorted by the key's text, the order etcd returns them in.
	want := []string{"10.0.0.10", "10.0.0.2", "10.0.0.3"}
	if !reflect.DeepEqual(allowed, want) || !reflect.DeepEqual(regs, want) {
		t.Errorf("allowed %q, registrations %q; want both %q", allowed, regs, want)
	}
	if len(snap.Status) != 2 || snap.Status["10.0.0.10"].DB.CurrentLSN != 0x5000000 || snap.Status["10.0.0.2"].Type != cluster.Standby {
		t.Errorf("Status = %+v", snap.Status)
	}
	if len(snap.Problems) != 1 || !strings.Contains(snap.Problems[0], garbage) {
		t.Errorf("Problems = %q, want one naming %s", snap.Problems, garbage)
	}
}

func testCoordinator(t *testing.T, ctx context.Context, s *Store) {
	if c, err := s.Coordinator(ctx); err != nil || c != "" {
		t.Fatalf("Coordinator before any campaign = %q, %v", c, err)
	}
	s1, err := concurrency.NewSession(s.cli, concurrency.WithTTL(60))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	e1 := concurrency.NewElection(s1, s.ElectionPrefix())
	if err := e1.Campaign(ctx, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Coordinator(ctx); err != nil || c != "10.0.0.1" {
		t.Fatalf("Coordinator = %q, %v; want 10.0.0.1", c, err)
	}

	// A second campaigner waits; the coordinator stays the first until it resigns.
	s2, err := concurrency.NewSession(s.cli, concurrency.WithTTL(60))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e2 := concurrency.NewElection(s2, s.ElectionPrefix())
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "10.0.0.2") }()
	// Wait until the second candidate's key exists.
	for {
		r, err := s.cli.Get(ctx, s.ElectionPrefix()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if r.Count == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("second campaign never wrote its key")
		}
	}
	if c, _ := s.Coordinator(ctx); c != "10.0.0.1" {
		t.Errorf("Coordinator with a waiting candidate = %q, want 10.0.0.1", c)
	}
	if err := e1.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Coordinator(ctx); c != "10.0.0.2" {
		t.Errorf("Coordinator after resign = %q, want 10.0.0.2", c)
	}
}

func testRequestStop(t *testing.T, ctx context.Context, s *Store) {
	if err := s.RequestStop(ctx, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	r, err := s.cli.Get(ctx, s.StopKey())
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("stop key %s: %v, %v", s.StopKey(), r, err)
	}
	var req StopRequest
	if err := json.Unmarshal(r.Kvs[0].Value, &req); err != nil || req.By != "10.0.0.1" || req.At.IsZero() {
		t.Errorf("stop request = %+v, %v", req, err)
	}
}

// Two clusters sharing one etcd never see each other's keys, even when one
// name is a prefix of the other.
func testClustersApart(t *testing.T, ctx context.Context, s *Store) {
	other := New(s.cli, "clustersapart2")
	if err := other.Allow(ctx, "10.0.0.1", "x"); err != nil {
		t.Fatal(err)
	}
	if err := other.Bootstrap(ctx, Info{Name: "clustersapart2"}, reg("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := other.RequestStop(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	lease, err := s.cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer s.cli.Revoke(context.Background(), lease.ID)
	if err := other.PublishStatus(ctx, &Lease{cli: s.cli, id: lease.ID}, cluster.MemberStatus{Address: "10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.IsAllowed(ctx, "10.0.0.1"); ok {
		t.Error("allowed in the other cluster counts here")
	}
	if n, _ := s.StatusCount(ctx); n != 0 {
		t.Errorf("StatusCount = %d, want 0", n)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil || len(snap.Allowed)+len(snap.Registrations)+len(snap.Status)+len(snap.Problems) != 0 || snap.Info != (Info{}) {
		t.Errorf("snapshot of an empty cluster = %+v, %v", snap, err)
	}
	if err := s.Bootstrap(ctx, Info{Name: "clustersapart"}, reg("10.0.0.3")); err != nil {
		t.Errorf("Bootstrap after another cluster's: %v", err)
	}
	if s.StopKey() == other.StopKey() {
		t.Error("same stop key for two clusters")
	}
}

// A failover committed between WatchPrimary's read and the start of its
// watch (here: by fn, on the read's version) is still delivered.
func TestWatchPrimaryMissesNothing(t *testing.T) {
	cli := testenv.StartEtcd(t)
	s := New(cli, "prod")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.InitPrimary(ctx, Primary{Node: "10.0.0.1", Epoch: 1, Phase: PhasePromoted}); err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	err := s.WatchPrimary(wctx, func(p Primary, rev int64) {
		seen = append(seen, p.Epoch)
		switch p.Epoch {
		case 1: // the read: commit the failover before the watch starts
			ok, err := s.UpdatePrimary(ctx, rev, Primary{Node: "10.0.0.2", Epoch: 2, Phase: PhasePromoting, Previous: "10.0.0.1"})
			if err != nil || !ok {
				t.Errorf("commit the failover: %v %v", ok, err)
				stop()
			}
		case 2:
			stop()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchPrimary returned %v, want the cancellation", err)
	}
	if !reflect.DeepEqual(seen, []uint64{1, 2}) {
		t.Fatalf("epochs seen %v, want [1 2]: the failover committed between the read and the watch was missed", seen)
	}
}
