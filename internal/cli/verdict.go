package cli

import (
	"fmt"

	"github.com/pgfm/pgfm/internal/cluster"
)

// verdict applies EFM's rule for cluster-status's exit code: healthy only
// when every agent and database is up, there is one primary and at least
// one standby, and every standby has replayed up to the primary's position.
// It also returns the lines that explain the verdict.
func verdict(rep cluster.Report) (bool, []string) {
	ok := true
	var lines []string
	var primaries, standbys []cluster.NodeReport
	for _, n := range rep.Nodes {
		switch {
		case n.Agent != cluster.AgentUp:
			ok = false
			lines = append(lines, fmt.Sprintf("Agent on %s is %s.", n.Address, n.Agent))
		case n.Type != cluster.Witness && n.DB != cluster.DBUp:
			ok = false
			lines = append(lines, fmt.Sprintf("Database on %s is %s.", n.Address, n.DB))
		}
		switch n.Type {
		case cluster.Primary:
			primaries = append(primaries, n)
		case cluster.Standby:
			standbys = append(standbys, n)
		}
	}
	switch len(primaries) {
	case 0:
		return false, append(lines, "No primary database was found.")
	case 1:
	default:
		return false, append(lines, fmt.Sprintf("%d primary databases were found.", len(primaries)))
	}
	if len(standbys) == 0 {
		return false, append(lines, "No standby databases were found.")
	}
	p := primaries[0].Probe
	if !p.Up || p.CurrentLSN == 0 {
		return false, append(lines, "Did not find the WAL location of the primary.")
	}
	inSync := true
	for _, s := range standbys {
		if !s.Probe.Up || s.Probe.ReplayLSN < p.CurrentLSN {
			inSync = false
		}
	}
	if !inSync {
		return false, append(lines, "One or more standby databases are not in sync with the primary.")
	}
	return ok, append(lines, "Standby database(s) in sync with primary. It is safe to promote.")
}
