package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/agent"
)

// Exit codes of `pgfm agent`, chosen so systemd restarts only what a
// restart can fix (packaging/pgfm@.service: RestartPreventExitStatus).
//
// A Go panic or runtime fatal error (ours or the embedded etcd's) exits 2,
// which is why a refusal is not 2: a crash must be restarted.
const (
	exitAgentFailed  = 1  // restartable
	exitAgentRemoved = 3  // disallow-node removed this node
	exitAgentRefused = 78 // configuration or admission: fix something first (sysexits' EX_CONFIG)
)

func agentCmd(e *env) *cobra.Command {
	var logLevel string
	cmd := &cobra.Command{
		Use:   "agent CLUSTER",
		Short: "Run the agent of CLUSTER on this node (foreground; systemd runs it as pgfm@CLUSTER)",
		Long: `Run the agent of CLUSTER in the foreground. It embeds an etcd member on
bind.address, serves the HTTP API on bind.address's host at admin.port, and logs
to stderr and to log.dir/CLUSTER.log.

With consensus data in state.dir it restarts as the same member. Otherwise it
joins through the members listed in CLUSTER.nodes, or, when that file is empty
and the local database is a primary, starts a new cluster.

SIGTERM or SIGINT stop the agent; the database keeps running.
Exit codes: 0 stopped (signal or stop-cluster), 1 failed, 2 crashed (a Go
panic), 3 removed by disallow-node, 78 refused (fix the configuration or allow
the node first). systemd restarts the agent after 1 and 2, not after 3 or 78.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, warns, err := e.load(args[0])
			if err != nil {
				var ee *ExitError
				if errors.As(err, &ee) {
					return &ExitError{Code: exitAgentRefused, Err: ee.Err}
				}
				return &ExitError{Code: exitAgentRefused, Err: err}
			}
			log, closeLog, err := agentLogger(e.stderr, cfg.LogDir, cfg.Cluster, logLevel)
			if err != nil {
				return &ExitError{Code: exitAgentRefused, Err: err}
			}
			defer closeLog()
			for _, w := range warns {
				log.Warn("configuration: " + w.String())
			}
			attrs := []any{}
			for _, kv := range cfg.Effective() {
				attrs = append(attrs, kv[0], kv[1])
			}
			log.Info("effective configuration", attrs...)
			err = agent.New(cfg, log).Run(cmd.Context())
			switch {
			case err == nil, errors.Is(err, agent.ErrStopCluster):
				if err != nil {
					log.Info(err.Error())
				}
				return nil
			case errors.Is(err, agent.ErrRemoved):
				log.Error(err.Error())
				return &ExitError{Code: exitAgentRemoved, Err: err}
			case errors.Is(err, agent.ErrRefused):
				log.Error(err.Error())
				return &ExitError{Code: exitAgentRefused, Err: err}
			default:
				log.Error("agent failed", "err", err)
				return &ExitError{Code: exitAgentFailed, Err: err}
			}
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// agentLogger logs as text to stderr (journald) and to log.dir/CLUSTER.log.
func agentLogger(stderr io.Writer, dir, cluster, level string) (*slog.Logger, func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("log.dir: %w (set log.dir to a writable directory)", err)
	}
	path := filepath.Join(dir, cluster+".log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w (set log.dir to a writable directory)", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	h := slog.NewMultiHandler(slog.NewTextHandler(stderr, opts), slog.NewTextHandler(f, opts))
	return slog.New(h), func() { f.Close() }, nil
}
