package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/httpapi"
)

// efmLongFlags are the flags EFM spells with one dash (`-switchover`);
// pgfm takes both spellings.
var efmLongFlags = []string{"switchover", "sourcenode", "candidate", "quiet", "noscripts", "json", "slot", "waldir", "prompt", "force"}

// doubleDash rewrites EFM's single-dash long flags to `--name`.
func doubleDash(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") {
			for _, f := range efmLongFlags {
				if name == f {
					out[i] = "-" + a
				}
			}
		}
	}
	return out
}

func promoteCmd(e *env) *cobra.Command {
	var req httpapi.PromoteRequest
	var sourceNode string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "promote CLUSTER [-switchover [-sourcenode ADDR | -candidate ADDR]] [-quiet] [-noscripts] [-force] [-json]",
		Short: "Promote a standby: a manual failover, or with -switchover a planned role swap with no data loss",
		Long: `Without -switchover: a manual failover. It ignores auto.failover and takes the
same committed, fenced path as an automatic one: the primary is stopped (if it
runs), script.fence runs, the best standby (or -candidate) is promoted, the
other standbys follow it. The old primary is left stopped, to be rebuilt.

With -switchover: a planned swap with no loss of acknowledged writes. The
primary stops cleanly, the new primary replays every record it wrote and is
promoted, and the old primary starts as a streaming standby of it (no rewind).
The new primary is -candidate (or -sourcenode, EFM's name) when given, else the
first standby of the priority order (set-priority, then priority.standbys)
among those streaming from the primary within max.failover.lag, as its
database answers when asked. Refused, with the reason, when no standby
qualifies or another operation is under way. A new primary that cannot replay
the old primary's last record (its replay paused or its WAL receiver stopped)
is never promoted with less: the switchover is aborted, the old primary is
promoted back with every write, and the command exits 1.

With synchronous.mode on or strict, only a standby of the recorded
synchronous set that certainly holds every acknowledged write is promoted;
-force promotes another one (or one when none qualifies), losing the
acknowledged writes it lacks: use it only when the primary is gone for good.

The command waits until the operation completed or failed and prints each
step's time; -json prints the same as JSON. Exit status 0 when it completed.
-noscripts skips script.fence and script.post.promotion; -quiet sends no
notification of the request. EFM's single-dash spellings work too.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sourceNode != "" && req.Target != "" && sourceNode != req.Target {
				return &ExitError{Code: 2, Err: fmt.Errorf("-sourcenode %s and -candidate %s name different standbys; give one", sourceNode, req.Target)}
			}
			if req.Target == "" {
				req.Target = sourceNode
			}
			cfg, c, err := e.adminClient(args[0])
			if err != nil {
				return err
			}
			c.HTTP.Timeout = 2*httpapi.OperationWait + cfg.RemoteTimeout
			res, err := c.Promote(cmd.Context(), req)
			if err != nil {
				return explain(cfg, err)
			}
			if asJSON {
				if err := writeJSON(e.stdout, res); err != nil {
					return err
				}
			} else {
				renderPromote(e, res)
			}
			if !res.Done {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&req.Switchover, "switchover", false, "planned swap: the old primary becomes a standby of the new one, no data loss")
	f.StringVar(&req.Target, "candidate", "", "the standby to promote (default: the cluster chooses)")
	f.StringVar(&sourceNode, "sourcenode", "", "EFM's name for the standby to promote with -switchover")
	f.BoolVar(&req.Quiet, "quiet", false, "send no notification of the request")
	f.BoolVar(&req.NoScripts, "noscripts", false, "do not run script.fence and script.post.promotion")
	f.BoolVar(&req.Force, "force", false, "synchronous mode: promote even a standby that may lack acknowledged writes")
	f.BoolVar(&asJSON, "json", false, "print the outcome as JSON")
	return cmd
}

func renderPromote(e *env, res httpapi.PromoteResult) {
	what := "Promotion"
	if res.Switchover {
		what = "Switchover"
	}
	fmt.Fprintf(e.stdout, "%s of %s to replace %s (epoch %d):\n", what, res.To, res.From, res.Epoch)
	for _, s := range res.Steps {
		fmt.Fprintf(e.stdout, "  %8s  %s\n", fmt.Sprintf("%.3fs", timeOf(s.After)), s.Name)
	}
	status := "completed"
	if !res.Done {
		status = "NOT completed"
	}
	fmt.Fprintf(e.stdout, "%s %s: %s\n", what, status, res.Outcome)
}

func timeOf(d httpapi.Duration) float64 { return float64(d) / 1e9 }

func setPriorityCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "set-priority CLUSTER ADDRESS PRIORITY",
		Short: "Set a standby's failover priority: 1 is promoted first, 0 never",
		Long: `Set the failover priority of the node ADDRESS (EFM's set-priority). Among
standbys holding the same WAL, lower numbers are promoted first; nodes with a
priority come before those only in priority.standbys, which come before the
rest. 0 means never promoted; any value above 0 makes a node with
promotable=false promotable. Kept in the cluster's state, so it survives agent
restarts; shown in cluster-status. A switchover without -candidate takes the
first of this order.`,
		Args: exactArgs(3, "CLUSTER ADDRESS PRIORITY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := strconv.Atoi(args[2])
			if err != nil || p < 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("priority %q: give 0 (never promoted) or a positive whole number (1 is promoted first)", args[2])}
			}
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.SetPriority(ctx, args[1], p)
			})
		},
	}
}

func maintenanceCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "maintenance CLUSTER on|off",
		Short: "Turn maintenance mode on or off: no automatic failover while on",
		Long: `While maintenance mode is on, the cluster does not fail over by itself, does
not treat a primary database an operator stopped as failed, and does not
restart a primary's database locally; status, health endpoints, notifications,
the fencing of an isolated primary and pgfm promote keep working. The mode is
kept in the cluster's state and survives agent restarts until turned off;
cluster-status shows it.`,
		Args: exactArgs(2, "CLUSTER on|off"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var on bool
			switch strings.ToLower(args[1]) {
			case "on", "true", "yes":
				on = true
			case "off", "false", "no":
			default:
				return &ExitError{Code: 2, Err: fmt.Errorf("maintenance %q: give on or off", args[1])}
			}
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.SetMaintenance(ctx, on)
			})
		},
	}
}

func createStandbyCmd(e *env) *cobra.Command {
	var req httpapi.CreateStandbyRequest
	var prompt bool
	cmd := &cobra.Command{
		Use:   "create-standby CLUSTER [-slot NAME] [-waldir DIR] [-prompt]",
		Short: "Make this node's database a fresh standby of the cluster's primary (pg_basebackup)",
		Long: `Run on the node that is to become a standby, its agent running (EFM 5's
create-standby): the local database is stopped; with -slot the replication slot
is dropped on the primary if unused and created again by pg_basebackup; the data
directory (and -waldir) is moved aside to DIR.pgfm-replaced-TIME when it holds
anything (remove it yourself), or filled when it was never initialised; the
primary is copied with pg_basebackup; the copy is configured as a standby of the
primary (primary_conninfo, primary_slot_name, standby.signal; the node's own
configuration files are kept), started, and monitored again.

Refused on the primary, on a witness, during a failover, or when the primary's
database does not run. -prompt shows the plan and asks before doing anything.
The command waits until the node streams from the primary (or the copy fails).`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, c, err := e.adminClient(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if prompt {
				dry := req
				dry.DryRun = true
				plan, err := c.CreateStandby(ctx, dry)
				if err != nil {
					return explain(cfg, err)
				}
				fmt.Fprintf(e.stdout, "%s\nDo you want to continue? [y/N] ", plan)
				var answer string
				fmt.Fscanln(cmd.InOrStdin(), &answer)
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					fmt.Fprintln(e.stdout, "Nothing done.")
					return &ExitError{Code: 1}
				}
			}
			msg, err := c.CreateStandby(ctx, req)
			if err != nil {
				return explain(cfg, err)
			}
			fmt.Fprintln(e.stdout, msg)
			return waitStandby(ctx, e, c, cfg.RemoteTimeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Slot, "slot", "", "physical replication slot to create on the primary and stream through")
	f.StringVar(&req.WalDir, "waldir", "", "put the standby's pg_wal in this directory (absolute path)")
	f.BoolVar(&prompt, "prompt", false, "show the plan and ask before doing anything")
	return cmd
}

// waitStandby follows the local agent's status until its database streams
// as a standby or create-standby says it failed.
func waitStandby(ctx context.Context, e *env, c *httpapi.Client, poll time.Duration) error {
	last := ""
	for {
		st, err := c.NodeStatus(ctx)
		if err == nil {
			switch {
			case st.Type == cluster.Standby && st.DB.WalReceiver == "streaming":
				fmt.Fprintf(e.stdout, "This node is a standby streaming from %s.\n", st.DB.SenderHost)
				return nil
			case strings.HasPrefix(st.IdleReason, "create-standby failed"):
				return &ExitError{Code: 1, Err: errors.New(st.IdleReason)}
			case strings.HasPrefix(st.IdleReason, "create-standby") && st.IdleReason != last:
				fmt.Fprintln(e.stdout, st.IdleReason)
				last = st.IdleReason
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(poll, time.Second)):
		}
	}
}

func resetMembersCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "reset-members CLUSTER",
		Short: "Remove the members whose agents are down, and allowed addresses that never joined",
		Long: `EFM 5's reset-members: every node whose agent is down is removed from the cluster
(its consensus member, registration and allowed entry, as disallow-node does),
addresses allowed but never joined are no longer allowed, and every agent
rewrites its .nodes file. Refused without a majority of live voting members,
when the cluster's primary is down (fail over first), and with an external etcd.
A removed node must be allowed again (allow-node) before it rejoins.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.adminCommand(cmd.Context(), args[0], func(ctx context.Context, c *httpapi.Client) (string, error) {
				return c.ResetMembers(ctx)
			})
		},
	}
}
