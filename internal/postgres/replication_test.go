package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

func senders(t *testing.T, n *testenv.PGNode) postgres.Senders {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := postgres.Replication(ctx, n.ConnString("postgres"))
	if err != nil {
		t.Fatalf("Replication(%s): %v", n, err)
	}
	return s
}

func receiver(n *testenv.PGNode) (postgres.Receiver, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return postgres.WalReceiver(ctx, n.ConnString("postgres"))
}

// byName finds the sender whose application_name is name.
func byName(ss []postgres.Sender, name string) (postgres.Sender, bool) {
	i := slices.IndexFunc(ss, func(s postgres.Sender) bool { return s.ApplicationName == name })
	if i < 0 {
		return postgres.Sender{}, false
	}
	return ss[i], true
}

func currentLSN(t *testing.T, n *testenv.PGNode) cluster.LSN {
	t.Helper()
	var s string
	n.QueryRow(t, "SELECT pg_current_wal_lsn()::text", &s)
	lsn, err := cluster.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// The primary reports both standbys streaming with their positions, one
// through its slot; the standbys' receivers say enough to tell the senders
// apart although every standby connects from 127.0.0.1; a stopped standby
// disappears from pg_stat_replication.
func TestReplicationSenders(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 2})
	p, s1, s2 := c.Primary(), c.Nodes[1], c.Nodes[2]

	// s1 streams through a slot (primary_slot_name reloads since PG 13).
	p.Exec(t, "SELECT pg_create_physical_replication_slot('node1_slot')")
	s1.Exec(t, "ALTER SYSTEM SET primary_slot_name = 'node1_slot'")
	s1.Exec(t, "SELECT pg_reload_conf()")
	p.Exec(t, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS v")
	written := currentLSN(t, p)

	var got postgres.Senders
	testenv.WaitFor(t, replTimeout, "both standbys streaming, replayed, s1 through its slot", func() (bool, error) {
		got = senders(t, p)
		for _, name := range []string{s1.Name, s2.Name} {
			s, ok := byName(got.Senders, name)
			switch {
			case !ok:
				return false, fmt.Errorf("no sender for %s in %+v", name, got.Senders)
			case s.State != "streaming" || s.ReplayLSN < written:
				return false, fmt.Errorf("%s: state %s, replayed %s, want streaming past %s", name, s.State, s.ReplayLSN, written)
			}
		}
		if s, _ := byName(got.Senders, s1.Name); s.Slot != "node1_slot" {
			return false, fmt.Errorf("s1's sender has slot %q", s.Slot)
		}
		return true, nil
	})
	if got.InRecovery || got.CurrentLSN < written || len(got.Senders) != 2 {
		t.Fatalf("primary: in recovery %t, current %s (written %s), %d senders", got.InRecovery, got.CurrentLSN, written, len(got.Senders))
	}
	for _, s := range got.Senders {
		if s.PID <= 0 || s.SyncState != "async" || s.ClientAddr == "" ||
			s.SentLSN < s.WriteLSN || s.WriteLSN < s.FlushLSN || s.FlushLSN < s.ReplayLSN || s.SentLSN > got.CurrentLSN {
			t.Errorf("sender %+v: want a pid, async, a client address and sent >= written >= flushed >= replayed, sent <= current %s", s, got.CurrentLSN)
		}
		if s.ReplayLag != nil && (*s.ReplayLag < 0 || *s.ReplayLag > time.Minute) {
			t.Errorf("sender %s: replay lag %v", s.ApplicationName, *s.ReplayLag)
		}
	}
	if s, _ := byName(got.Senders, s2.Name); s.Slot != "" {
		t.Errorf("s2 streams without a slot, reported %q", s.Slot)
	}

	// What each standby says of its own receiver.
	var standbys []postgres.Standby
	for _, n := range []*testenv.PGNode{s1, s2} {
		r, err := receiver(n)
		if err != nil {
			t.Fatalf("WalReceiver(%s): %v", n, err)
		}
		if !r.InRecovery || r.Status != "streaming" || r.SenderHost != p.Host || r.ApplicationName != n.Name || r.ReplayLSN < written {
			t.Errorf("WalReceiver(%s) = %+v; want streaming from %s as %s, replayed past %s", n, r, p.Host, n.Name, written)
		}
		standbys = append(standbys, postgres.Standby{Address: n.Host, Receiver: &r})
	}
	if r := standbys[0].Receiver; r.Slot != "node1_slot" {
		t.Errorf("s1's receiver slot %q", r.Slot)
	}
	m := postgres.Match(got.Senders, standbys)
	for i, n := range []*testenv.PGNode{s1, s2} {
		if m[i] < 0 || got.Senders[m[i]].ApplicationName != n.Name {
			t.Errorf("Match gave %s sender %d of %+v", n, m[i], got.Senders)
		}
	}
	if r, err := receiver(p); err != nil || r.InRecovery || r.Status != "" || r.ApplicationName != "" {
		t.Errorf("WalReceiver(primary) = %+v, %v; want not in recovery, no receiver", r, err)
	}
	if s := senders(t, s1); !s.InRecovery || s.CurrentLSN != 0 || len(s.Senders) != 0 {
		t.Errorf("Replication(standby) = %+v; want in recovery, no current LSN, no senders", s)
	}

	// A stopped standby's sender goes; the other keeps streaming.
	s2.Stop(t, "fast")
	testenv.WaitFor(t, replTimeout, "s2 gone from pg_stat_replication", func() (bool, error) {
		got = senders(t, p)
		if _, present := byName(got.Senders, s2.Name); present {
			return false, fmt.Errorf("senders %+v", got.Senders)
		}
		return true, nil
	})
	if s, ok := byName(got.Senders, s1.Name); !ok || s.State != "streaming" || len(got.Senders) != 1 {
		t.Errorf("after s2 stopped: %+v; want only s1, streaming", got.Senders)
	}
	if _, err := receiver(s2); err == nil {
		t.Error("WalReceiver of a stopped server: no error")
	}
}

// Without pg_read_all_stats the senders' details are hidden: an error
// that says so, not standbys shown as in no state.
func TestReplicationNeedsStatsPrivilege(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{Standbys: 1})
	p := c.Primary()
	p.Exec(t, "CREATE ROLE watcher LOGIN")
	conn := postgres.ConnString(p.Host, p.Port, "watcher", "postgres", "disable", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := postgres.Replication(ctx, conn); !errors.Is(err, postgres.ErrNoStatsPrivilege) {
		t.Fatalf("without pg_read_all_stats: err = %v, want ErrNoStatsPrivilege", err)
	}
	p.Exec(t, "GRANT pg_read_all_stats TO watcher")
	s, err := postgres.Replication(ctx, conn)
	if err != nil || len(s.Senders) != 1 || s.Senders[0].State == "" {
		t.Fatalf("with pg_read_all_stats: %+v, %v", s, err)
	}
}

func TestReplicationMatch(t *testing.T) {
	rcv := func(app, slot string) *postgres.Receiver {
		return &postgres.Receiver{InRecovery: true, Status: "streaming", ApplicationName: app, Slot: slot}
	}
	for _, tc := range []struct {
		name     string
		senders  []postgres.Sender
		standbys []postgres.Standby
		want     []int
	}{
		{
			name:     "by client address, IPv4 and IPv6",
			senders:  []postgres.Sender{{ClientAddr: "2001:db8::3"}, {ClientAddr: "10.0.0.2"}},
			standbys: []postgres.Standby{{Address: "10.0.0.2"}, {Address: "2001:db8::3"}},
			want:     []int{1, 0},
		},
		{
			name:     "IPv4-mapped IPv6 client address",
			senders:  []postgres.Sender{{ClientAddr: "::ffff:10.0.0.2"}},
			standbys: []postgres.Standby{{Address: "10.0.0.2"}},
			want:     []int{0},
		},
		{
			name:     "not connected, and a sender from elsewhere",
			senders:  []postgres.Sender{{ClientAddr: "10.0.0.9", ApplicationName: "pg_receivewal"}},
			standbys: []postgres.Standby{{Address: "10.0.0.2", Receiver: rcv("walreceiver", "")}},
			want:     []int{-1},
		},
		{
			name: "one address, two senders: the receiver's name decides",
			senders: []postgres.Sender{
				{ClientAddr: "10.0.0.2", ApplicationName: "pg_basebackup", State: "backup"},
				{ClientAddr: "10.0.0.2", ApplicationName: "node2"},
			},
			standbys: []postgres.Standby{{Address: "10.0.0.2", Receiver: rcv("node2", "")}},
			want:     []int{1},
		},
		{
			name: "one address, two senders, name unknown: no guess",
			senders: []postgres.Sender{
				{ClientAddr: "10.0.0.2", ApplicationName: "pg_basebackup"},
				{ClientAddr: "10.0.0.2", ApplicationName: "walreceiver"},
			},
			standbys: []postgres.Standby{{Address: "10.0.0.2"}},
			want:     []int{-1},
		},
		{
			name: "behind NAT or on loopback: by application name",
			senders: []postgres.Sender{
				{ClientAddr: "127.0.0.1", ApplicationName: "node2"},
				{ClientAddr: "127.0.0.1", ApplicationName: "node1"},
			},
			standbys: []postgres.Standby{{Address: "127.1.1.1", Receiver: rcv("node1", "")}, {Address: "127.1.1.2", Receiver: rcv("node2", "")}},
			want:     []int{1, 0},
		},
		{
			name:     "over a unix socket: by application name",
			senders:  []postgres.Sender{{ClientAddr: "", ApplicationName: "node1"}},
			standbys: []postgres.Standby{{Address: "10.0.0.2", Receiver: rcv("node1", "")}},
			want:     []int{0},
		},
		{
			name:     "the node's address as application name, its database unreadable",
			senders:  []postgres.Sender{{ClientAddr: "192.0.2.1", ApplicationName: "10.0.0.2"}},
			standbys: []postgres.Standby{{Address: "10.0.0.2"}},
			want:     []int{0},
		},
		{
			name: "two standbys with one name behind NAT: no guess",
			senders: []postgres.Sender{
				{ClientAddr: "192.0.2.1", ApplicationName: "walreceiver"},
				{ClientAddr: "192.0.2.1", ApplicationName: "walreceiver"},
			},
			standbys: []postgres.Standby{{Address: "10.0.0.2", Receiver: rcv("walreceiver", "")}, {Address: "10.0.0.3", Receiver: rcv("walreceiver", "")}},
			want:     []int{-1, -1},
		},
		{
			name: "a name on another standby's address is that standby's",
			senders: []postgres.Sender{
				{ClientAddr: "10.0.0.3", ApplicationName: "node"},
			},
			standbys: []postgres.Standby{{Address: "10.0.0.2", Receiver: rcv("node", "")}, {Address: "10.0.0.3"}},
			want:     []int{-1, 0},
		},
		{
			name: "the slot wins over addresses and names",
			senders: []postgres.Sender{
				{ClientAddr: "127.0.0.1", ApplicationName: "walreceiver", Slot: "b"},
				{ClientAddr: "127.0.0.1", ApplicationName: "walreceiver", Slot: "a"},
			},
			standbys: []postgres.Standby{{Address: "127.1.1.1", Receiver: rcv("walreceiver", "a")}, {Address: "127.1.1.2", Receiver: rcv("walreceiver", "b")}},
			want:     []int{1, 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := postgres.Match(tc.senders, tc.standbys); !slices.Equal(got, tc.want) {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}
