package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/cluster"
)

func sampleReport() cluster.Report {
	return cluster.Report{
		Cluster: "main",
		Nodes: []cluster.NodeReport{
			primaryNode("10.0.0.1"),
			with(standbyNode("10.0.0.2"), func(n *cluster.NodeReport) {
				n.Probe.ReceiveLSN, n.Probe.ReplayLSN = 0x5000100, 0x5000080
			}),
			witnessNode("10.0.0.3"),
			{Address: "10.0.0.4", Type: cluster.Idle, Agent: cluster.AgentIdle, DB: cluster.DBDown,
				IdleReason: "the local database does not answer: refused", Probe: cluster.DBObservation{Error: "probe refused"}},
		},
		Allowed:          []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"},
		Coordinator:      "10.0.0.3",
		FailoverPriority: []string{"10.0.0.2"},
		MinimumStandbys:  1,
	}
}

// decodeEFM encodes toEFM's output as cluster-status-json does and decodes
// it generically, so the test sees the wire names.
func decodeEFM(t *testing.T, rep cluster.Report) (map[string]any, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := writeJSON(&buf, toEFM(rep)); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	return m, buf.String()
}

func TestToEFMNodes(t *testing.T) {
	m, raw := decodeEFM(t, sampleReport())
	nodes, ok := m["nodes"].(map[string]any)
	if !ok || len(nodes) != 4 {
		t.Fatalf("nodes = %v\n%s", m["nodes"], raw)
	}
	pairs := [][2]string{{"lsn", "xlog"}, {"lsnReceive", "xlogReceive"}, {"lsnInfo", "xloginfo"}}
	cases := []struct {
		addr, typ, agent, db string
		lsn, recv, info      string
	}{
		{"10.0.0.1", "Primary", "UP", "UP", "0/5000000", "", ""},
		{"10.0.0.2", "Standby", "UP", "UP", "0/5000080", "0/5000100", ""},
		{"10.0.0.4", "Idle", "IDLE", "DOWN", "", "", "the local database does not answer: refused"},
	}
	for _, tc := range cases {
		n, ok := nodes[tc.addr].(map[string]any)
		if !ok {
			t.Fatalf("no node %s in\n%s", tc.addr, raw)
		}
		for k, want := range map[string]string{"type": tc.typ, "agent": tc.agent, "db": tc.db, "vip": ""} {
			if n[k] != want {
				t.Errorf("%s: %s = %v, want %q", tc.addr, k, n[k], want)
			}
		}
		if n["vip_active"] != false {
			t.Errorf("%s: vip_active = %v", tc.addr, n["vip_active"])
		}
		want := map[string]string{"lsn": tc.lsn, "lsnReceive": tc.recv, "lsnInfo": tc.info}
		for _, p := range pairs {
			efm5, ok5 := n[p[0]]
			efm4, ok4 := n[p[1]]
			if !ok5 || !ok4 {
				t.Errorf("%s: %s present %v, %s present %v; want both", tc.addr, p[0], ok5, p[1], ok4)
				continue
			}
			if efm5 != efm4 {
				t.Errorf("%s: %s = %v but %s = %v", tc.addr, p[0], efm5, p[1], efm4)
			}
			if efm5 != want[p[0]] {
				t.Errorf("%s: %s = %v, want %q", tc.addr, p[0], efm5, want[p[0]])
			}
		}
	}
	w, ok := nodes["10.0.0.3"].(map[string]any)
	if !ok {
		t.Fatalf("no witness in\n%s", raw)
	}
	if w["type"] != "Witness" || w["db"] != "N/A" {
		t.Errorf("witness = %v", w)
	}
	for _, p := range pairs {
		for _, k := range p {
			if _, ok := w[k]; ok {
				t.Errorf("witness has %s: %v", k, w[k])
			}
		}
	}
}

func TestToEFMTopLevel(t *testing.T) {
	m, raw := decodeEFM(t, sampleReport())
	for _, k := range []string{"nodes", "allowednodes", "membershipcoordinator", "failoverpriority", "minimumstandbys", "missingnodes", "messages"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from\n%s", k, raw)
		}
	}
	if m["membershipcoordinator"] != "10.0.0.3" || m["minimumstandbys"] != float64(1) {
		t.Errorf("coordinator %v, minimumstandbys %v", m["membershipcoordinator"], m["minimumstandbys"])
	}
	if got, _ := m["allowednodes"].([]any); len(got) != 4 || got[0] != "10.0.0.1" {
		t.Errorf("allowednodes = %v", m["allowednodes"])
	}
}

// Scripts index these lists: an empty one must be [], never null.
func TestToEFMEmptyListsAreArrays(t *testing.T) {
	_, raw := decodeEFM(t, cluster.Report{Cluster: "main"})
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"allowednodes", "failoverpriority", "missingnodes", "messages"} {
		if got := strings.TrimSpace(string(m[k])); got != "[]" {
			t.Errorf("%s = %s, want []", k, got)
		}
	}
	if got := strings.TrimSpace(string(m["nodes"])); got != "{}" {
		t.Errorf("nodes = %s, want {}", got)
	}
}

func TestRenderText(t *testing.T) {
	cases := []struct {
		name    string
		rep     cluster.Report
		want    []string
		notWant []string
	}{
		{
			name: "full",
			rep: func() cluster.Report {
				r := sampleReport()
				r.Messages = []string{"key /pgfm/main/status/x: bad"}
				r.Nodes[0].VIP, r.Nodes[0].VIPActive = "10.0.0.100", true
				return r
			}(),
			want: []string{
				"Cluster Status: main",
				"Allowed node host list:\n\t10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4\n",
				"Membership coordinator: 10.0.0.3",
				"Standby priority host list:\n\t10.0.0.2\n",
				"Promote Status:",
				"10.0.0.100*",
				"0/5000100", "0/5000080",
				"the local database does not answer: refused",
				"Agent on 10.0.0.4 is IDLE.",
				"Standby database(s) in sync with primary. It is safe to promote.",
				"Note: key /pgfm/main/status/x: bad",
			},
			notWant: []string{"(List is empty.)", "(none)"},
		},
		{
			name: "empty",
			rep:  cluster.Report{Cluster: "main"},
			want: []string{
				"Allowed node host list:\n\t(List is empty.)\n",
				"Membership coordinator: (none)",
				"Standby priority host list:\n\t(List is empty.)\n",
				"Promote Status:",
				"No primary database was found.",
			},
			notWant: []string{"Note:"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			renderText(&buf, tc.rep)
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// The witness has no line in Promote Status (it has no database).
func TestRenderTextPromoteStatusSkipsWitness(t *testing.T) {
	var buf bytes.Buffer
	renderText(&buf, sampleReport())
	_, promote, ok := strings.Cut(buf.String(), "Promote Status:")
	if !ok {
		t.Fatal("no Promote Status section")
	}
	if strings.Contains(promote, "10.0.0.3") || strings.Contains(promote, "Witness") {
		t.Errorf("witness listed under Promote Status:\n%s", promote)
	}
	for _, a := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.4"} {
		if !strings.Contains(promote, a) {
			t.Errorf("%s missing under Promote Status:\n%s", a, promote)
		}
	}
}

// TestSynchronousInStatus checks the mode, the recorded set and each
// standby's sync state in both outputs.
func TestSynchronousInStatus(t *testing.T) {
	rep := sampleReport()
	rep.SyncMode = "on"
	rep.Sync = &cluster.SyncReport{Epoch: 3, Primary: "10.0.0.1", Members: []string{"10.0.0.2"}, Quorum: 1}
	rep.Nodes[1].SyncState = "quorum"
	m, raw := decodeEFM(t, rep)
	if m["synchronousMode"] != "on" || m["synchronousQuorum"] != float64(1) {
		t.Errorf("synchronous mode and quorum: %v %v\n%s", m["synchronousMode"], m["synchronousQuorum"], raw)
	}
	if got, _ := m["synchronousStandbys"].([]any); len(got) != 1 || got[0] != "10.0.0.2" {
		t.Errorf("synchronousStandbys %v\n%s", m["synchronousStandbys"], raw)
	}
	if n, _ := m["nodes"].(map[string]any)["10.0.0.2"].(map[string]any); n["syncState"] != "quorum" {
		t.Errorf("syncState of 10.0.0.2: %v\n%s", n["syncState"], raw)
	}
	var buf bytes.Buffer
	renderText(&buf, rep)
	for _, want := range []string{"Synchronous replication: on; synchronous standbys: ANY 1 (10.0.0.2)", "10.0.0.2: quorum"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("cluster-status lacks %q:\n%s", want, buf.String())
		}
	}
	rep.Sync.Members, rep.Sync.Quorum = nil, 0
	buf.Reset()
	renderText(&buf, rep)
	if !strings.Contains(buf.String(), "none: the primary acknowledges writes alone") {
		t.Errorf("a primary alone is not said:\n%s", buf.String())
	}
	off := sampleReport()
	off.SyncMode = "off"
	buf.Reset()
	renderText(&buf, off)
	if strings.Contains(buf.String(), "Synchronous") {
		t.Errorf("asynchronous clusters show no synchronous line:\n%s", buf.String())
	}
	if m, _ := decodeEFM(t, off); m["synchronousStandbys"] == nil {
		t.Error("synchronousStandbys must be an empty array, not null")
	}
}
