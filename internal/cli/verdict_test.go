package cli

import (
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Node builders for reports: a healthy primary at 0/5000000, a standby
// replayed up to it, a witness.
func primaryNode(addr string) cluster.NodeReport {
	return cluster.NodeReport{
		Address: addr, Type: cluster.Primary, Agent: cluster.AgentUp, DB: cluster.DBUp,
		Probe: cluster.DBObservation{Up: true, CurrentLSN: 0x5000000},
	}
}

func standbyNode(addr string) cluster.NodeReport {
	return cluster.NodeReport{
		Address: addr, Type: cluster.Standby, Agent: cluster.AgentUp, DB: cluster.DBUp,
		Probe: cluster.DBObservation{Up: true, InRecovery: true, ReceiveLSN: 0x5000000, ReplayLSN: 0x5000000},
	}
}

func witnessNode(addr string) cluster.NodeReport {
	return cluster.NodeReport{Address: addr, Type: cluster.Witness, Agent: cluster.AgentUp, DB: cluster.DBNone}
}

func with(n cluster.NodeReport, edit func(*cluster.NodeReport)) cluster.NodeReport {
	edit(&n)
	return n
}

func TestVerdict(t *testing.T) {
	const (
		inSync   = "Standby database(s) in sync with primary. It is safe to promote."
		notSync  = "One or more standby databases are not in sync with the primary."
		noPrim   = "No primary database was found."
		noStandb = "No standby databases were found."
	)
	cases := []struct {
		name  string
		nodes []cluster.NodeReport
		ok    bool
		lines []string // exactly these lines, in order
	}{
		{
			name:  "healthy",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), standbyNode("10.0.0.2"), witnessNode("10.0.0.3")},
			ok:    true,
			lines: []string{inSync},
		},
		{
			name:  "standby past the primary is in sync",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), with(standbyNode("10.0.0.2"), func(n *cluster.NodeReport) { n.Probe.ReplayLSN = 0x6000000 })},
			ok:    true,
			lines: []string{inSync},
		},
		{
			name: "standby agent down",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), standbyNode("10.0.0.2"),
				with(standbyNode("10.0.0.3"), func(n *cluster.NodeReport) { n.Agent = cluster.AgentDown })},
			ok:    false,
			lines: []string{"Agent on 10.0.0.3 is DOWN.", inSync},
		},
		{
			name: "witness agent down",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), standbyNode("10.0.0.2"),
				with(witnessNode("10.0.0.3"), func(n *cluster.NodeReport) { n.Agent = cluster.AgentDown })},
			ok:    false,
			lines: []string{"Agent on 10.0.0.3 is DOWN.", inSync},
		},
		{
			name: "idle agent",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), standbyNode("10.0.0.2"),
				{Address: "10.0.0.3", Type: cluster.Idle, Agent: cluster.AgentIdle, DB: cluster.DBDown}},
			ok:    false,
			lines: []string{"Agent on 10.0.0.3 is IDLE.", inSync},
		},
		{
			name: "standby database down",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"),
				with(standbyNode("10.0.0.2"), func(n *cluster.NodeReport) {
					n.DB = cluster.DBDown
					n.Probe = cluster.DBObservation{Error: "connection refused"}
				})},
			ok:    false,
			lines: []string{"Database on 10.0.0.2 is DOWN.", notSync},
		},
		{
			name: "primary database down",
			nodes: []cluster.NodeReport{
				with(primaryNode("10.0.0.1"), func(n *cluster.NodeReport) { n.DB, n.Probe = cluster.DBDown, cluster.DBObservation{} }),
				standbyNode("10.0.0.2")},
			ok:    false,
			lines: []string{"Database on 10.0.0.1 is DOWN.", "Did not find the WAL location of the primary."},
		},
		{
			name:  "no primary",
			nodes: []cluster.NodeReport{standbyNode("10.0.0.2"), standbyNode("10.0.0.3")},
			ok:    false,
			lines: []string{noPrim},
		},
		{
			name:  "empty cluster",
			nodes: nil,
			ok:    false,
			lines: []string{noPrim},
		},
		{
			name:  "two primaries",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), primaryNode("10.0.0.2"), standbyNode("10.0.0.3")},
			ok:    false,
			lines: []string{"2 primary databases were found."},
		},
		{
			name:  "no standby",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), witnessNode("10.0.0.3")},
			ok:    false,
			lines: []string{noStandb},
		},
		{
			name: "standby behind the primary",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), standbyNode("10.0.0.2"),
				with(standbyNode("10.0.0.3"), func(n *cluster.NodeReport) { n.Probe.ReplayLSN = 0x4FFFFFF })},
			ok:    false,
			lines: []string{notSync},
		},
		{
			name: "standby received but not replayed",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"),
				with(standbyNode("10.0.0.2"), func(n *cluster.NodeReport) { n.Probe.ReceiveLSN, n.Probe.ReplayLSN = 0x6000000, 0x1000000 })},
			ok:    false,
			lines: []string{notSync},
		},
		{
			name: "standby probe down though its agent says DB up",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"),
				with(standbyNode("10.0.0.2"), func(n *cluster.NodeReport) { n.Probe = cluster.DBObservation{Error: "timeout"} })},
			ok:    false,
			lines: []string{notSync},
		},
		{
			name: "primary position unknown",
			nodes: []cluster.NodeReport{
				with(primaryNode("10.0.0.1"), func(n *cluster.NodeReport) { n.Probe.CurrentLSN = 0 }),
				standbyNode("10.0.0.2")},
			ok:    false,
			lines: []string{"Did not find the WAL location of the primary."},
		},
		{
			name: "witness has no database and is ignored for it",
			nodes: []cluster.NodeReport{primaryNode("10.0.0.1"), standbyNode("10.0.0.2"),
				with(witnessNode("10.0.0.3"), func(n *cluster.NodeReport) { n.DB = cluster.DBUnknown })},
			ok:    true,
			lines: []string{inSync},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, lines := verdict(cluster.Report{Cluster: "c", Nodes: tc.nodes})
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v (lines %q)", ok, tc.ok, lines)
			}
			if strings.Join(lines, "\n") != strings.Join(tc.lines, "\n") {
				t.Errorf("lines:\n got %q\nwant %q", lines, tc.lines)
			}
		})
	}
}
