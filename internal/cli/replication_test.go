package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/pki"
)

func ptr[T any](v T) *T { return &v }

func sampleReplication() httpapi.ReplicationReport {
	return httpapi.ReplicationReport{
		Cluster: "main", Reporter: "10.0.0.3", Primary: "10.0.0.1", Epoch: 3, PrimaryPhase: "promoted", CurrentLSN: 0x5002000,
		Standbys: []httpapi.StandbyReplication{
			{Node: "10.0.0.2", Upstream: "10.0.0.1", Connected: true, State: "streaming", SyncState: "async",
				SentLSN: 0x5002000, WriteLSN: 0x5002000, FlushLSN: 0x5001F00, ReplayLSN: 0x5001000,
				LagBytes: ptr(int64(4096)), LagSeconds: ptr(0.0125), Slot: "node2_slot", PID: 4242, ClientAddr: "10.0.0.2"},
			{Node: "2001:db8::4", Upstream: "10.0.0.1", Connected: true, State: "streaming", SyncState: "sync",
				SentLSN: 0x5002000, WriteLSN: 0x5002000, FlushLSN: 0x5002000, ReplayLSN: 0x5002000, LagBytes: ptr(int64(0))},
		},
		Others: []httpapi.StandbyReplication{},
	}
}

func renderedReplication(rep httpapi.ReplicationReport) string {
	var buf bytes.Buffer
	renderReplication(&buf, rep)
	return buf.String()
}

// row finds the table row of the standby or client named first and
// returns its cells (split on the table's runs of spaces).
func row(t *testing.T, out, first string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no row for %s:\n%s", first, out)
	return nil
}

func TestRenderReplication(t *testing.T) {
	out := renderedReplication(sampleReplication())
	for _, w := range []string{
		"Replication Status: main",
		"Primary: 10.0.0.1 (epoch 3, promoted), current WAL LSN 0/5002000",
		"All standbys (2) are streaming from the primary.",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if got, want := strings.Join(row(t, out, "Standby"), " "),
		"Standby Upstream State Sync Sent LSN Written LSN Flushed LSN Replayed LSN Lag (bytes) Lag (s) Slot"; got != want {
		t.Errorf("header = %q, want %q", got, want)
	}
	if got, want := strings.Join(row(t, out, "10.0.0.2"), " "),
		"10.0.0.2 10.0.0.1 streaming async 0/5002000 0/5002000 0/5001F00 0/5001000 4096 0.013 node2_slot"; got != want {
		t.Errorf("row 10.0.0.2 = %q, want %q", got, want)
	}
	// A NULL replay_lag and no slot leave their cells empty.
	if got, want := strings.Join(row(t, out, "2001:db8::4"), " "),
		"2001:db8::4 10.0.0.1 streaming sync 0/5002000 0/5002000 0/5002000 0/5002000 0"; got != want {
		t.Errorf("row 2001:db8::4 = %q, want %q", got, want)
	}
	if strings.Contains(out, "Other WAL senders") {
		t.Errorf("an empty Others table is printed:\n%s", out)
	}
}

func TestRenderReplicationNotStreaming(t *testing.T) {
	rep := sampleReplication()
	rep.Standbys[1] = httpapi.StandbyReplication{Node: "2001:db8::4", State: httpapi.StateNotConnected, ReplayLSN: 0x5000000,
		LagBytes: ptr(int64(0x2000)), Detail: "its database does not answer: connection refused; its agent is down"}
	rep.Standbys = append(rep.Standbys, httpapi.StandbyReplication{Node: "10.0.0.5", Upstream: "10.0.0.1", Connected: true, State: "catchup", SyncState: "async"})
	rep.Others = []httpapi.StandbyReplication{{Upstream: "10.0.0.1", Connected: true, State: "backup", SyncState: "async", ApplicationName: "pg_basebackup"}}
	out := renderedReplication(rep)
	for _, w := range []string{
		"Standby 2001:db8::4 is not connected to the primary: its database does not answer: connection refused; its agent is down.",
		"Standby 10.0.0.5 is not streaming: its WAL sender is in state catchup.",
		"Other WAL senders (no node of the cluster):",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if got, want := strings.Join(row(t, out, "2001:db8::4"), " "), "2001:db8::4 not connected 0/5000000 8192"; got != want {
		t.Errorf("row 2001:db8::4 = %q, want %q", got, want)
	}
	// A sender over a unix socket has no client address.
	if got, want := strings.Join(row(t, out, "(local)"), " "), "(local) pg_basebackup 10.0.0.1 backup async"; got != want {
		t.Errorf("row (local) = %q, want %q", got, want)
	}
	if strings.Contains(out, "All standbys") {
		t.Errorf("says all standbys stream:\n%s", out)
	}
}

func TestReplicationVerdict(t *testing.T) {
	lagging := sampleReplication()
	lagging.Standbys[0].LagBytes, lagging.Standbys[0].LagSeconds = ptr(int64(1<<30)), ptr(600.0)
	noStandby := sampleReplication()
	noStandby.Standbys = []httpapi.StandbyReplication{}
	catchup := sampleReplication()
	catchup.Standbys[0].State = "catchup"
	gone := sampleReplication()
	gone.Standbys[1] = httpapi.StandbyReplication{Node: "2001:db8::4", State: httpapi.StateNotConnected}
	for _, tc := range []struct {
		name string
		rep  httpapi.ReplicationReport
		ok   bool
		want string
	}{
		{"all streaming", sampleReplication(), true, "All standbys (2) are streaming"},
		{"lag alone is fine", lagging, true, "All standbys (2) are streaming"},
		{"no standby", noStandby, false, "Cluster main has no standby"},
		{"catchup", catchup, false, "Standby 10.0.0.2 is not streaming: its WAL sender is in state catchup."},
		{"not connected", gone, false, "Standby 2001:db8::4 is not connected to the primary."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, lines := replicationVerdict(tc.rep)
			if ok != tc.ok || !strings.Contains(strings.Join(lines, "\n"), tc.want) {
				t.Errorf("verdict %t %q; want %t with %q", ok, lines, tc.ok, tc.want)
			}
		})
	}
}

// serveReplication runs a stand-in agent answering GET /v1/replication
// with rep on 127.0.0.1 and writes a config pointing at it; it returns
// the config dir.
func serveReplication(t *testing.T, rep httpapi.ReplicationReport) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/replication", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("replication-status sent a token: it is no admin command")
		}
		json.NewEncoder(w).Encode(rep)
	})
	// The agent answers only over TLS to a certificate of the cluster,
	// which the command finds in state.dir.
	state := t.TempDir()
	k, err := pki.NewClusterKey("main")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.FromClusterKey(k, netip.MustParseAddr("127.0.0.1"), "main", state)
	if err != nil {
		t.Fatal(err)
	}
	conf := creds.ServerConfig()
	conf.ClientAuth = tls.RequireAndVerifyClientCert
	srv := &http.Server{Handler: mux, TLSConfig: conf}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	props := fmt.Sprintf("db.user=postgres\ndb.port=5432\ndb.database=postgres\ndb.data.dir=/tmp/x\nbind.address=127.0.0.1:%d\nadmin.port=%d\nstate.dir=%s\n",
		freePort(t), l.Addr().(*net.TCPAddr).Port, state)
	if err := os.WriteFile(filepath.Join(dir, "main.properties"), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReplicationStatusCommand(t *testing.T) {
	notConnected := sampleReplication()
	notConnected.Standbys[1] = httpapi.StandbyReplication{Node: "2001:db8::4", State: httpapi.StateNotConnected}
	for _, tc := range []struct {
		name string
		rep  httpapi.ReplicationReport
		args []string
		code int
		want string
	}{
		{"text", sampleReplication(), nil, 0, "All standbys (2) are streaming"},
		{"json", sampleReplication(), []string{"--json"}, 0, `"replay_lsn": "0/5001000"`},
		{"EFM's single dash", sampleReplication(), []string{"-json"}, 0, `"lag_seconds": 0.0125`},
		{"not connected", notConnected, nil, 1, "Standby 2001:db8::4 is not connected"},
		{"not connected, json", notConnected, []string{"--json"}, 1, `"state": "not connected"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := serveReplication(t, tc.rep)
			code, stdout, stderr := run(t, append([]string{"--config-dir", dir, "replication-status", "main"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stdout, tc.want) {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d and %q", code, stdout, stderr, tc.code, tc.want)
			}
			if len(tc.args) > 0 {
				var back httpapi.ReplicationReport
				if err := json.Unmarshal([]byte(stdout), &back); err != nil || len(back.Standbys) != 2 {
					t.Errorf("--json printed %v, %v:\n%s", back, err, stdout)
				}
			}
		})
	}
}

func TestReplicationStatusAgentNotRunning(t *testing.T) {
	dir, _ := writeConfig(t, "main")
	code, stdout, stderr := run(t, "--config-dir", dir, "replication-status", "main")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "is not running") || !strings.Contains(stderr, "systemctl start pgfm@main") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	code, _, stderr = run(t, "--config-dir", dir, "replication-status")
	if code != 2 || !strings.Contains(stderr, "replication-status takes CLUSTER") {
		t.Errorf("without CLUSTER: exit %d, stderr:\n%s", code, stderr)
	}
}
