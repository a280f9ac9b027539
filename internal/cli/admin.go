package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// adminCommand runs an authenticated operation on the local agent and
// prints its answer.
func (e *env) adminCommand(ctx context.Context, name string, op func(context.Context, *httpapi.Client) (string, error)) error {
	cfg, c, err := e.adminClient(name)
	if err != nil {
		return err
	}
	msg, err := op(ctx, c)
	if err != nil {
		return explain(cfg, err)
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

// adminClient loads cluster name's files and returns a client of the local
// agent carrying the admin token.
func (e *env) adminClient(name string) (config.Config, *httpapi.Client, error) {
	cfg, _, err := e.load(name)
	if err != nil {
		return cfg, nil, err
	}
	c, err := e.localClient(cfg, true)
	return cfg, c, err
}

func allowNodeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "allow-node CLUSTER ADDRESS",
		Short: "Allow the node with bind.address IP ADDRESS to join CLUSTER",
		Long: `Add ADDRESS (the IP of the new node's bind.address) to the cluster's allowed
node host list. A node must be allowed before its agent can join, unless
auto.allow.hosts=true. Run on any node whose agent is running.`,
		Args: exactArgs(2, "CLUSTER ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.Allow(ctx, args[1])
			})
		},
	}
}

func disallowNodeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "disallow-node CLUSTER ADDRESS",
		Short: "Remove the node ADDRESS from CLUSTER: it may no longer join, and its agent stops",
		Long: `Remove ADDRESS from the allowed node host list and from the cluster's members.
If its agent runs, it stops with a message saying it was removed, and deletes its
consensus data; to bring it back, allow-node it and start the agent again.
Run on another node than the one removed.`,
		Args: exactArgs(2, "CLUSTER ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.Disallow(ctx, args[1])
			})
		},
	}
}

func stopClusterCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "stop-cluster CLUSTER",
		Short: "Stop every agent of CLUSTER; the databases keep running",
		Long: `Stop the agent on every node of CLUSTER. The databases keep running, unmonitored.
Refused when enable.stop.cluster=false. Start the agents again with systemctl;
they rejoin as the same members.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.StopCluster(ctx)
			})
		},
	}
}

func resumeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "resume CLUSTER",
		Short: "Return this node's idle agent to monitoring its database",
		Long: `An agent goes idle (EFM's IDLE) when its database was down at start, failed,
or is in the wrong state; an idle node is never promoted. Once the database is
right again (a standby in recovery, or the cluster's primary out of recovery),
resume returns the agent to monitoring. auto.resume.startup.period and
auto.resume.failure.period do the same on a timer. Runs script.resumed first.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.Resume(ctx)
			})
		},
	}
}
