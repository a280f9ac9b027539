package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/cluster"
)

func clusterStatusCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster-status CLUSTER",
		Short: "Show every node's type, agent and database state, and the standbys' WAL positions",
		Long: `Show the cluster as this node's agent sees it: each node's type, agent and
database state, the allowed node host list, the membership coordinator, the
standby priority list and, queried from every database now, the WAL positions.

Exits 0 only when every agent and database is up, there is a primary and at
least one standby, and every standby is in sync with the primary (EFM's rule),
so scripts can use it.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := e.report(cmd, args[0])
			if err != nil {
				return err
			}
			renderText(e.stdout, rep)
			if ok, _ := verdict(rep); !ok {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
}

func clusterStatusJSONCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster-status-json CLUSTER",
		Short: "Print cluster-status as JSON (EFM's shape, with both EFM 5 and EFM 4 LSN names)",
		Long: `Print the cluster status as JSON in EFM's shape: "nodes" keyed by address, each
with type, agent (UP/DOWN/IDLE), db, vip, vip_active and the WAL positions under
EFM 5's names (lsn, lsnReceive, lsnInfo) and EFM 4's (xlog, xlogReceive,
xloginfo); then allowednodes, membershipcoordinator, failoverpriority,
minimumstandbys, missingnodes and messages. Exit code as cluster-status.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := e.report(cmd, args[0])
			if err != nil {
				return err
			}
			if err := writeJSON(e.stdout, toEFM(rep)); err != nil {
				return err
			}
			if ok, _ := verdict(rep); !ok {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
}

func (e *env) report(cmd *cobra.Command, name string) (cluster.Report, error) {
	cfg, _, err := e.load(name)
	if err != nil {
		return cluster.Report{}, err
	}
	c, err := e.localClient(cfg, false)
	if err != nil {
		return cluster.Report{}, err
	}
	rep, err := c.Report(cmd.Context())
	if err != nil {
		return rep, explain(cfg, err)
	}
	return rep, nil
}

// nodeStatus is node-status-json's output, as EFM prints it (vip_active is
// a string there), plus agent.
type nodeStatus struct {
	Type      string `json:"type"`
	Address   string `json:"address"`
	DB        string `json:"db"`
	VIP       string `json:"vip"`
	VIPActive string `json:"vip_active"`
	Agent     string `json:"agent"`
}

func nodeStatusJSONCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "node-status-json CLUSTER",
		Short: "Print this node's status as JSON; exit 1 when its database failed or the agent is idle",
		Args:  exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := e.load(args[0])
			if err != nil {
				return err
			}
			c, err := e.localClient(cfg, false)
			if err != nil {
				return err
			}
			st, err := c.NodeStatus(cmd.Context())
			if err != nil {
				return explain(cfg, err)
			}
			out := nodeStatus{Type: string(st.Type), Address: st.Address, VIP: st.VIP, VIPActive: strconv.FormatBool(st.VIPHeld), Agent: string(cluster.AgentUp)}
			switch {
			case st.Type == cluster.Witness:
				out.DB = string(cluster.DBNone)
			case st.DB.Up:
				out.DB = string(cluster.DBUp)
			default:
				out.DB = string(cluster.DBDown)
			}
			if st.Type == cluster.Idle {
				out.Agent = string(cluster.AgentIdle)
			}
			if err := writeJSON(e.stdout, out); err != nil {
				return err
			}
			if out.DB == string(cluster.DBDown) || st.Type == cluster.Idle {
				return &ExitError{Code: 1, Err: fmt.Errorf("node %s: %s", st.Address, st.IdleReason)}
			}
			return nil
		},
	}
}
