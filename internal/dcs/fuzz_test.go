package dcs

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Realistic values of every record the store decodes from etcd.
var (
	seedSince = time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	seedInfo  = Info{Name: "main", Token: "pgfm-main-1a2b", CreatedAt: seedSince, CreatedBy: "10.0.0.1"}
	seedPrim  = Primary{Node: "10.0.0.2", Epoch: 7, Timeline: 3, Phase: PhasePromoted, Previous: "10.0.0.1",
		Reason: "primary database down", Since: seedSince, LastLSN: 0x3000060, Switchover: true}
	seedSync   = Sync{Epoch: 7, Primary: "10.0.0.2", Members: []string{"10.0.0.1", "10.0.0.3"}, Quorum: 1, Since: seedSince}
	seedMaint  = Maintenance{Since: seedSince, By: "10.0.0.1"}
	seedAllow  = Allowed{Address: "10.0.0.3", AddedAt: seedSince, AddedBy: "10.0.0.1"}
	seedReg    = cluster.Registration{Address: "10.0.0.3", BindAddr: "10.0.0.3:7800", AdminURL: "https://10.0.0.3:7809", DBPort: 5432, JoinedAt: seedSince, MemberID: 0x8e9e05c52164694d}
	seedStatus = cluster.MemberStatus{Address: "10.0.0.3", BindAddr: "10.0.0.3:7800", AdminURL: "https://10.0.0.3:7809", DBPort: 5432,
		AppName: "10.0.0.3", Type: cluster.Standby, Version: "1.0",
		DB: cluster.DBObservation{Up: true, InRecovery: true, Timeline: 3, ReceiveLSN: 0x3000060, ReplayLSN: 0x3000028,
			WalReceiver: "streaming", SenderHost: "10.0.0.2", SystemID: "7312345678901234567", Version: 170002},
		Promotable: true, Priority: []string{"10.0.0.3"}, ObservedAt: seedSince, StartedAt: seedSince, Epoch: 7,
		PrimaryProbe:    &cluster.RemoteProbe{Node: "10.0.0.2", DB: cluster.DBObservation{Up: true, CurrentLSN: 0x3000060}, At: seedSince},
		RestartingUntil: seedSince, Demoted: &cluster.Demotion{Epoch: 6, Checkpoint: 0x2000028},
		SyncStates: map[string]string{"10.0.0.1": "quorum"}}
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func addSeeds(f *testing.F) {
	for _, s := range []struct {
		key   string
		value []byte
	}{
		{"config", mustJSON(seedInfo)},
		{"primary", mustJSON(seedPrim)},
		{"sync", mustJSON(seedSync)},
		{"sync", mustJSON(Sync{})},
		{"maintenance", mustJSON(seedMaint)},
		{"priority/10.0.0.3", []byte("2")},
		{"priority/10.0.0.3", []byte(" 0\n")},
		{"allowed/10.0.0.3", mustJSON(seedAllow)},
		{"nodes/10.0.0.3", mustJSON(seedReg)},
		{"status/10.0.0.3", mustJSON(seedStatus)},
		{"clean-stop/10.0.0.3", []byte("2026-12-02T10:00:00Z")},
		{"stop", mustJSON(StopRequest{At: seedSince, By: "10.0.0.1"})},
		{"coordinator/694d8e9e05c52164", []byte("10.0.0.1")},
		// hostile
		{"primary", []byte(`{"node":"10.0.0.2","epoch":7,"phase":"promoted","since":"yesterday"}`)},
		{"primary", []byte(`{"node":"10.0.0.2","epoch":"7","phase":"promoted"}`)},
		{"config", []byte(`{"name":"main","created_at":1}`)},
		{"sync", []byte(`{"epoch":7,"members":["10.0.0.3"],"quorum":2}`)},
		{"sync", []byte(`{"epoch":7,"members":["10.0.0.3"],"quorum":-1}`)},
		{"sync", []byte(`{"members":["10.0.0.3"],"quorum":1,"since":"x"}`)},
		{"maintenance", []byte(`null`)},
		{"maintenance", []byte(`{`)},
		{"priority/x", []byte("99999999999999999999")},
		{"status/10.0.0.9", mustJSON(seedStatus)},
		{"status/10.0.0.3", []byte(`{"address":"10.0.0.3","db":{"current_lsn":"0/"}}`)},
		{"status/10.0.0.3", []byte(`{"address":"10.0.0.3","db":{"current_lsn":"100000000/0"}}`)},
		{"nodes/x", []byte(`[]`)},
		{"allowed/x", []byte("\xff")},
	} {
		f.Add(s.key, s.value)
	}
}

// roundTrip checks that v, encoded, decoded and encoded again, gives the
// same JSON: the record survives being written back to etcd unchanged.
func roundTrip[T any](t *testing.T, what string, v T) {
	t.Helper()
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s %+v does not encode: %v", what, v, err)
	}
	var back T
	if err := json.Unmarshal(first, &back); err != nil {
		t.Fatalf("%s as written, %s, does not decode: %v", what, first, err)
	}
	second, err := json.Marshal(back)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("%s written back changes: %s, then %s (%v)", what, first, second, err)
	}
}

func freshSnapshot() Snapshot {
	return Snapshot{Status: map[string]cluster.MemberStatus{}, CleanStops: map[string]bool{}, Priorities: map[string]int{}}
}

// FuzzSnapshotAdd decodes one etcd value under one key (relative to the
// cluster's prefix) into a snapshot, as Store.Snapshot and Memory.Snapshot
// do for every key. A record that decodes survives being written back
// unchanged; one that does not leaves the snapshot as it was, except the
// two that fail safe: a synchronous set that cannot be read promotes
// nobody (quorum 0, no members), and a maintenance mark that cannot be
// read still means on.
func FuzzSnapshotAdd(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		const mod = 41
		snap := freshSnapshot()
		err := snap.add(key, value, mod)
		changed := !reflect.DeepEqual(snap, freshSnapshot())
		switch {
		case key == "config":
			var want Info
			if (json.Unmarshal(value, &want) == nil) != (err == nil) {
				t.Fatalf("config %q: %v", value, err)
			}
			if err == nil {
				roundTrip(t, "cluster info", snap.Info)
			}
		case key == "primary":
			if err == nil {
				if snap.PrimaryRev != mod {
					t.Fatalf("primary %q decoded at revision %d, want %d", value, snap.PrimaryRev, mod)
				}
				roundTrip(t, "primary record", snap.Primary)
			}
		case key == "sync":
			if snap.Sync == nil || snap.SyncRev != mod {
				t.Fatalf("sync %q: set %v at revision %d (%v)", value, snap.Sync, snap.SyncRev, err)
			}
			if q := snap.Sync.Quorum; q < 0 || q > len(snap.Sync.Members) {
				t.Fatalf("sync %q: quorum %d of %d members (%v)", value, q, len(snap.Sync.Members), err)
			}
			if err != nil && (snap.Sync.Quorum != 0 || len(snap.Sync.Members) != 0) {
				t.Fatalf("sync %q unreadable (%v), yet set %+v could promote", value, err, snap.Sync)
			}
			if err == nil {
				roundTrip(t, "synchronous set", *snap.Sync)
			}
			return
		case key == "maintenance":
			if snap.Maintenance == nil {
				t.Fatalf("maintenance %q (%v): mode off", value, err)
			}
			if err == nil {
				roundTrip(t, "maintenance mark", *snap.Maintenance)
			}
			return
		case strings.HasPrefix(key, "priority/"):
			addr := strings.TrimPrefix(key, "priority/")
			if err == nil {
				p := snap.Priorities[addr]
				if back, err := parsePriority([]byte(priorityValue(p))); err != nil || back != p {
					t.Fatalf("priority %d written back reads %d, %v", p, back, err)
				}
				if want, _ := strconv.Atoi(strings.TrimSpace(string(value))); want != p {
					t.Fatalf("priority %q read as %d", value, p)
				}
			}
		case strings.HasPrefix(key, "allowed/"):
			if err == nil {
				roundTrip(t, "allowed entry", snap.Allowed[0])
			}
		case strings.HasPrefix(key, "nodes/"):
			if err == nil {
				roundTrip(t, "registration", snap.Registrations[0])
			}
		case strings.HasPrefix(key, "status/"):
			addr := strings.TrimPrefix(key, "status/")
			if err == nil {
				st, ok := snap.Status[addr]
				if !ok || st.Address != addr {
					t.Fatalf("status under %s: %+v, %v", key, st, ok)
				}
				roundTrip(t, "status", st)
			}
		case strings.HasPrefix(key, "clean-stop/"):
			if err != nil || !snap.CleanStops[strings.TrimPrefix(key, "clean-stop/")] {
				t.Fatalf("clean stop %s: %v", key, err)
			}
			return
		default:
			if err != nil || changed {
				t.Fatalf("key %q is none of the snapshot's, yet: %v, changed %v", key, err, changed)
			}
			return
		}
		if err != nil && changed {
			t.Fatalf("%s: %q cannot be decoded (%v), yet the snapshot changed: %+v", key, value, err, snap)
		}
		if err == nil && !changed && !strings.HasPrefix(key, "status/") && key != "config" && key != "primary" {
			t.Fatalf("%s: %q decoded, yet the snapshot did not change", key, value)
		}
	})
}

// FuzzMemorySnapshot writes one arbitrary value under one key of a
// healthy cluster's keys and reads the snapshot: one bad value never
// blinds the cluster. The snapshot is read; every other record is in it
// as written; a value that was not decoded is named in Problems.
func FuzzMemorySnapshot(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		ctx := context.Background()
		m := NewMemory("main", func() time.Time { return seedSince })
		reg1 := cluster.Registration{Address: "10.0.0.1", BindAddr: "10.0.0.1:7800", JoinedAt: seedSince}
		if err := m.Bootstrap(ctx, seedInfo, reg1); err != nil {
			t.Fatal(err)
		}
		if err := m.InitPrimary(ctx, seedPrim); err != nil {
			t.Fatal(err)
		}
		if err := m.Register(ctx, seedReg); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		m.commitLocked(memOp{key: m.prefix + key, value: value})
		m.mu.Unlock()

		snap, err := m.Snapshot(ctx)
		if err != nil {
			t.Fatalf("one value %q under %q broke the snapshot: %v", value, key, err)
		}
		if key != "config" && !reflect.DeepEqual(mustJSON(snap.Info), mustJSON(seedInfo)) {
			t.Fatalf("cluster info lost: %+v", snap.Info)
		}
		if key != "primary" && (snap.PrimaryRev == 0 || snap.Primary.Node != seedPrim.Node || snap.Primary.Epoch != seedPrim.Epoch) {
			t.Fatalf("primary record lost: %+v at %d", snap.Primary, snap.PrimaryRev)
		}
		if key == "primary" && snap.PrimaryRev == 0 && !reflect.DeepEqual(snap.Primary, Primary{}) {
			t.Fatalf("no primary record (%q could not be decoded), yet one is named: %+v", value, snap.Primary)
		}
		regs := map[string]bool{}
		for _, r := range snap.Registrations {
			regs[r.Address] = true
		}
		for _, want := range []string{"nodes/10.0.0.1", "nodes/10.0.0.3"} {
			if key != want && !regs[strings.TrimPrefix(want, "nodes/")] {
				t.Fatalf("registration %s lost: %+v", want, snap.Registrations)
			}
		}
		var probe Snapshot = freshSnapshot()
		if probe.add(key, value, 1) != nil {
			named := false
			for _, p := range snap.Problems {
				named = named || strings.Contains(p, m.prefix+key)
			}
			if !named {
				t.Fatalf("%q under %q could not be decoded, and Problems does not say: %q", value, key, snap.Problems)
			}
		}
		// The store's own readers of these records agree with the snapshot.
		if key == "sync" {
			rec, _, err := m.Sync(ctx)
			if rec == nil || rec.Quorum != snap.Sync.Quorum || (err == nil) != (probe.add(key, value, 1) == nil) {
				t.Fatalf("Sync() = %+v, %v; snapshot %+v", rec, err, snap.Sync)
			}
		}
		if key == "maintenance" {
			if mark, _ := m.Maintenance(ctx); mark == nil {
				t.Fatalf("maintenance %q reads as off", value)
			}
		}
	})
}
