package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/pgfm/pgfm/internal/cluster"
)

// efmNode is one node in cluster-status-json, in EFM's shape: EFM 5 names
// the LSNs lsn/lsnReceive/lsnInfo, EFM 4 xlog/xlogReceive/xloginfo; both
// are written so scripts for either keep working. agent is ours.
type efmNode struct {
	Type        string  `json:"type"`
	Agent       string  `json:"agent"`
	DB          string  `json:"db"`
	VIP         string  `json:"vip"`
	VIPActive   bool    `json:"vip_active"`
	LSN         *string `json:"lsn,omitempty"`
	LSNReceive  *string `json:"lsnReceive,omitempty"`
	LSNInfo     *string `json:"lsnInfo,omitempty"`
	XLog        *string `json:"xlog,omitempty"`
	XLogReceive *string `json:"xlogReceive,omitempty"`
	XLogInfo    *string `json:"xloginfo,omitempty"`
	IdleReason  string  `json:"idleReason,omitempty"`
	// pgfm's own: the standby's sync_state on the primary.
	SyncState string `json:"syncState,omitempty"`
}

type efmStatus struct {
	Nodes                 map[string]efmNode `json:"nodes"`
	AllowedNodes          []string           `json:"allowednodes"`
	MembershipCoordinator string             `json:"membershipcoordinator"`
	FailoverPriority      []string           `json:"failoverpriority"`
	MinimumStandbys       int                `json:"minimumstandbys"`
	MissingNodes          []string           `json:"missingnodes"`
	Messages              []string           `json:"messages"`
	// pgfm's own: the primary record.
	Epoch        uint64 `json:"epoch"`
	Primary      string `json:"primary"`
	PrimaryPhase string `json:"primaryPhase"`
	// Maintenance: no automatic failover (pgfm maintenance).
	Maintenance bool `json:"maintenance"`
	// Priorities set with set-priority, by address.
	Priorities map[string]int `json:"priorities"`
	// Synchronous replication (pgfm's own): the mode and the recorded set.
	SynchronousMode     string   `json:"synchronousMode"`
	SynchronousStandbys []string `json:"synchronousStandbys"`
	SynchronousQuorum   int      `json:"synchronousQuorum"`
}

// lsns are the replayed (or current, on a primary) and received positions
// shown for a node, with a note when there are none.
func lsns(n cluster.NodeReport) (lsn, recv, info string) {
	switch {
	case !n.Probe.Up:
		info = n.Probe.Error
	case n.Probe.InRecovery:
		lsn, recv = n.Probe.ReplayLSN.String(), n.Probe.ReceiveLSN.String()
	default:
		lsn = n.Probe.CurrentLSN.String()
	}
	if n.IdleReason != "" {
		info = n.IdleReason
	}
	return lsn, recv, info
}

func toEFM(rep cluster.Report) efmStatus {
	out := efmStatus{
		Nodes:                 map[string]efmNode{},
		AllowedNodes:          nonNil(rep.Allowed),
		MembershipCoordinator: rep.Coordinator,
		FailoverPriority:      nonNil(rep.FailoverPriority),
		MinimumStandbys:       rep.MinimumStandbys,
		MissingNodes:          nonNil(rep.MissingNodes),
		Messages:              nonNil(rep.Messages),
		Epoch:                 rep.Epoch,
		Primary:               rep.PrimaryNode,
		PrimaryPhase:          rep.PrimaryPhase,
		Maintenance:           rep.Maintenance,
		Priorities:            rep.Priorities,
	}
	if out.Priorities == nil {
		out.Priorities = map[string]int{}
	}
	out.SynchronousMode, out.SynchronousStandbys = rep.SyncMode, []string{}
	if rep.Sync != nil {
		out.SynchronousStandbys, out.SynchronousQuorum = nonNil(rep.Sync.Members), rep.Sync.Quorum
	}
	for _, n := range rep.Nodes {
		e := efmNode{Type: string(n.Type), Agent: string(n.Agent), DB: string(n.DB), VIP: n.VIP, VIPActive: n.VIPActive, IdleReason: n.IdleReason,
			SyncState: n.SyncState}
		if n.Type != cluster.Witness {
			lsn, recv, info := lsns(n)
			e.LSN, e.LSNReceive, e.LSNInfo = &lsn, &recv, &info
			e.XLog, e.XLogReceive, e.XLogInfo = &lsn, &recv, &info
		}
		out.Nodes[n.Address] = e
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// renderText prints cluster-status in EFM's layout (4.x's, which keeps
// the Agent column).
func renderText(w io.Writer, rep cluster.Report) {
	fmt.Fprintf(w, "Cluster Status: %s\n\n", rep.Cluster)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "\tAgent Type\tAddress\tAgent\tDB\tVIP")
	fmt.Fprintln(tw, "\t----------\t-------\t-----\t--\t---")
	for _, n := range rep.Nodes {
		vip := n.VIP
		if n.VIPActive {
			vip += "*"
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\n", n.Type, n.Address, n.Agent, n.DB, vip)
	}
	tw.Flush()
	list := func(title string, items []string) {
		fmt.Fprintf(w, "\n%s:\n", title)
		if len(items) == 0 {
			fmt.Fprintln(w, "\t(List is empty.)")
			return
		}
		fmt.Fprintf(w, "\t%s\n", strings.Join(items, " "))
	}
	list("Allowed node host list", rep.Allowed)
	coord := rep.Coordinator
	if coord == "" {
		coord = "(none)"
	}
	fmt.Fprintf(w, "\nMembership coordinator: %s\n", coord)
	if rep.PrimaryNode != "" {
		fmt.Fprintf(w, "\nPrimary record: %s, epoch %d (%s)\n", rep.PrimaryNode, rep.Epoch, rep.PrimaryPhase)
	}
	list("Standby priority host list", rep.FailoverPriority)
	if len(rep.Priorities) > 0 {
		var set []string
		for _, addr := range slices.Sorted(maps.Keys(rep.Priorities)) {
			set = append(set, fmt.Sprintf("%s=%d", addr, rep.Priorities[addr]))
		}
		fmt.Fprintf(w, "\tset-priority: %s\n", strings.Join(set, " "))
	}
	if rep.Maintenance {
		fmt.Fprint(w, "\nMaintenance mode: ON (no automatic failover)\n")
	}
	if rep.SyncMode != "" && rep.SyncMode != "off" {
		set := "(none recorded yet)"
		switch {
		case rep.Sync != nil && rep.Sync.Quorum == 0:
			set = "none: the primary acknowledges writes alone"
		case rep.Sync != nil:
			set = fmt.Sprintf("ANY %d (%s)", rep.Sync.Quorum, strings.Join(rep.Sync.Members, " "))
		}
		fmt.Fprintf(w, "\nSynchronous replication: %s; synchronous standbys: %s\n", rep.SyncMode, set)
		for _, n := range rep.Nodes {
			if n.SyncState != "" {
				fmt.Fprintf(w, "\t%s: %s\n", n.Address, n.SyncState)
			}
		}
	}

	fmt.Fprint(w, "\nPromote Status:\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "\tDB Type\tAddress\tWAL Received LSN\tWAL Replayed LSN\tInfo")
	fmt.Fprintln(tw, "\t-------\t-------\t----------------\t----------------\t----")
	for _, n := range rep.Nodes {
		if n.Type == cluster.Witness {
			continue
		}
		lsn, recv, info := lsns(n)
		fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\n", n.Type, n.Address, recv, lsn, info)
	}
	tw.Flush()
	_, lines := verdict(rep)
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintf(w, "\t%s\n", l)
	}
	for _, m := range rep.Messages {
		fmt.Fprintf(w, "\tNote: %s\n", m)
	}
}
