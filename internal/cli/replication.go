package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/httpapi"
)

func replicationStatusCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replication-status CLUSTER [--json]",
		Short: "Show each standby's replication from the primary: state, sync state, LSNs, lag and slot",
		Long: `Show, for every standby of the cluster, what the primary's database reports now
(pg_stat_replication): the host it streams from, its state (streaming, catchup,
...), its sync state, the WAL positions sent to it and written, flushed and
replayed by it, its lag in bytes (the primary's current WAL position minus the
replayed one) and in seconds (replay_lag; empty when PostgreSQL shows none) and
its replication slot. A standby the primary has no WAL sender for is listed as
"not connected", with the reason as far as its own database tells. WAL senders
to clients that are no node of the cluster (pg_basebackup, pg_receivewal) are
listed apart. --json prints the same as JSON.

Exit status: 0 when every standby streams from the primary; 1 when one does
not (not connected, or in another state such as catchup), when the cluster
has no standby, or when the report cannot be made. Lag alone does not make it 1.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := e.load(args[0])
			if err != nil {
				return err
			}
			c, err := e.localClient(cfg, false)
			if err != nil {
				return err
			}
			rep, err := c.Replication(cmd.Context())
			if err != nil {
				return explain(cfg, err)
			}
			if asJSON {
				if err := writeJSON(e.stdout, rep); err != nil {
					return err
				}
			} else {
				renderReplication(e.stdout, rep)
			}
			if ok, _ := replicationVerdict(rep); !ok {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// replicationVerdict is the exit status's reason: every standby streams
// from the primary, and there is one.
func replicationVerdict(rep httpapi.ReplicationReport) (bool, []string) {
	if len(rep.Standbys) == 0 {
		return false, []string{fmt.Sprintf("Cluster %s has no standby: nothing replicates from the primary %s.", rep.Cluster, rep.Primary)}
	}
	var lines []string
	for _, s := range rep.Standbys {
		switch {
		case s.Streaming():
		case s.Connected:
			lines = append(lines, fmt.Sprintf("Standby %s is not streaming: its WAL sender is in state %s.", s.Node, s.State))
		case s.Detail != "":
			lines = append(lines, fmt.Sprintf("Standby %s is not connected to the primary: %s.", s.Node, s.Detail))
		default:
			lines = append(lines, fmt.Sprintf("Standby %s is not connected to the primary.", s.Node))
		}
	}
	if len(lines) > 0 {
		return false, lines
	}
	return true, []string{fmt.Sprintf("All standbys (%d) are streaming from the primary.", len(rep.Standbys))}
}

// renderReplication prints replication-status as a table, in the layout
// of cluster-status.
func renderReplication(w io.Writer, rep httpapi.ReplicationReport) {
	fmt.Fprintf(w, "Replication Status: %s\n\n", rep.Cluster)
	fmt.Fprintf(w, "Primary: %s (epoch %d, %s), current WAL LSN %s\n\n", rep.Primary, rep.Epoch, rep.PrimaryPhase, rep.CurrentLSN)
	table := func(first string, lines []httpapi.StandbyReplication) {
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintf(tw, "\t%s\tUpstream\tState\tSync\tSent LSN\tWritten LSN\tFlushed LSN\tReplayed LSN\tLag (bytes)\tLag (s)\tSlot\n", first)
		fmt.Fprintf(tw, "\t%s\t--------\t-----\t----\t--------\t-----------\t-----------\t------------\t-----------\t-------\t----\n", strings.Repeat("-", len(first)))
		for _, s := range lines {
			name := s.Node
			if name == "" {
				name = s.ClientAddr
				if name == "" {
					name = "(local)"
				}
				if s.ApplicationName != "" {
					name += " " + s.ApplicationName
				}
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.Upstream, s.State, s.SyncState,
				s.SentLSN, s.WriteLSN, s.FlushLSN, s.ReplayLSN, bytesCell(s.LagBytes), secondsCell(s.LagSeconds), s.Slot)
		}
		tw.Flush()
	}
	table("Standby", rep.Standbys)
	if len(rep.Others) > 0 {
		fmt.Fprint(w, "\nOther WAL senders (no node of the cluster):\n\n")
		table("Client", rep.Others)
	}
	_, lines := replicationVerdict(rep)
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintf(w, "\t%s\n", l)
	}
}

func bytesCell(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

func secondsCell(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', 3, 64)
}
