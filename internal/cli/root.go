package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/agent"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/pki"
	"github.com/pgfm/pgfm/internal/version"
)

// DefaultConfigDir is where cluster files live unless --config-dir or
// PGFM_CONFIG_DIR says otherwise.
const DefaultConfigDir = "/etc/pgfm"

// ExitError carries the process exit code; its message (if any) is printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

type env struct {
	configDir string
	stdout    io.Writer
	stderr    io.Writer
}

// Run executes the command line args and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(doubleDash(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(stderr, "pgfm:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(stderr, "pgfm:", err)
	if strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return 1
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "pgfm [--config-dir DIR] COMMAND CLUSTER [ARGS]",
		Short: "pgfm: a failover manager for PostgreSQL streaming replication",
		Long: `pgfm keeps a PostgreSQL primary and its standbys available: an agent on every
database host (and on optional witness hosts) forms a cluster through consensus,
watches the databases and fails over when the primary fails.

A cluster named CLUSTER is configured by CLUSTER.properties and CLUSTER.nodes in
the config directory (--config-dir, else $PGFM_CONFIG_DIR, else /etc/pgfm).
Every command but "agent", "encrypt" and "cluster-key" talks to the agent
running on this node, over TLS with the agent's own credentials: run them as
root or as the agent's user.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Usage mistakes exit 2: for cluster-status, 1 means "not healthy".
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: 2, Err: fmt.Errorf("%w; see `pgfm --help`", err)}
	})
	root.PersistentFlags().StringVar(&e.configDir, "config-dir", "", "directory of CLUSTER.properties and CLUSTER.nodes (default $PGFM_CONFIG_DIR or "+DefaultConfigDir+")")
	root.AddCommand(
		agentCmd(e),
		clusterStatusCmd(e),
		clusterStatusJSONCmd(e),
		nodeStatusJSONCmd(e),
		allowNodeCmd(e),
		clusterKeyCmd(e),
		disallowNodeCmd(e),
		stopClusterCmd(e),
		resumeCmd(e),
		promoteCmd(e),
		setPriorityCmd(e),
		maintenanceCmd(e),
		replicationStatusCmd(e),
		createStandbyCmd(e),
		resetMembersCmd(e),
		encryptCmd(e),
	)
	return root
}

func (e *env) dir() string {
	if e.configDir != "" {
		return e.configDir
	}
	if d := os.Getenv("PGFM_CONFIG_DIR"); d != "" {
		return d
	}
	return DefaultConfigDir
}

// load reads the cluster's files; a bad file is a usage error (exit 2).
func (e *env) load(cluster string) (config.Config, []config.Warning, error) {
	if err := config.ValidateClusterName(cluster); err != nil {
		return config.Config{}, nil, &ExitError{Code: 2, Err: err}
	}
	cfg, warns, err := config.Load(e.dir(), cluster)
	if err != nil {
		return cfg, warns, &ExitError{Code: 2, Err: fmt.Errorf("cluster %s: invalid configuration:\n%w", cluster, err)}
	}
	return cfg, warns, nil
}

// localClient is a client of this node's agent; withToken adds the admin
// token, which only the agent's user (or root) can read.
func (e *env) localClient(cfg config.Config, withToken bool) (*httpapi.Client, error) {
	token := ""
	if withToken {
		path := agent.TokenPath(cfg.StateDir)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, notRunning(cfg, fmt.Errorf("no admin token at %s", path))
		case err != nil:
			return nil, &ExitError{Code: 1, Err: fmt.Errorf("cannot read the admin token %s: %v; run this command as root or as the agent's user", path, err)}
		}
		token = strings.TrimSpace(string(b))
	}
	creds, err := localCredentials(cfg)
	if err != nil {
		return nil, err
	}
	url := httpapi.URL(cfg.BindAddress.Addr().String(), cfg.AdminPort)
	// From the node's own address, as the agent's peers: connections
	// from elsewhere on the host share no per-address allowance with it.
	return httpapi.NewClient(url, token, cfg.BindAddress.Addr().String(), cfg.RemoteTimeout+30*time.Second).WithTLS(creds.ClientConfig()), nil
}

// localCredentials are the agent's own certificate and the cluster's CA,
// which the agent writes to state.dir (or the user's tls.* files): the
// agent answers anything but health checks only over TLS to a
// certificate of the cluster.
func localCredentials(cfg config.Config) (*pki.Credentials, error) {
	ca, cert, key := pki.FilesIn(cfg.StateDir)
	if t := cfg.TLS; t.OwnPKI() {
		ca, cert, key = t.CAFile, t.CertFile, t.KeyFile
	}
	creds, err := pki.LoadFiles(ca, cert, key, netip.Addr{})
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, notRunning(cfg, fmt.Errorf("no agent credentials at %s", cert))
	case errors.Is(err, os.ErrPermission):
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("cannot read the agent's credentials (%v); run this command as root or as the agent's user", err)}
	case err != nil:
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("the agent's credentials: %v", err)}
	}
	return creds, nil
}

// explain turns a client error into what the user should do.
func explain(cfg config.Config, err error) error {
	var un *httpapi.UnreachableError
	switch {
	case errors.As(err, &un) && errors.Is(err, syscall.ECONNREFUSED):
		return notRunning(cfg, err)
	case errors.As(err, &un):
		// It listens, but closed or did not answer: busy, not gone.
		return &ExitError{Code: 1, Err: fmt.Errorf(
			"the pgfm agent of cluster %s did not answer (%v); it may be stuck, or admin.port %d may be flooded (admin.max.connections); see its log",
			cfg.Cluster, err, cfg.AdminPort)}
	}
	return &ExitError{Code: 1, Err: err}
}

func notRunning(cfg config.Config, err error) error {
	return &ExitError{Code: 1, Err: fmt.Errorf(
		"the pgfm agent of cluster %s is not running on this node (%v); start it with `systemctl start pgfm@%s` or `pgfm agent %s`",
		cfg.Cluster, err, cfg.Cluster, cfg.Cluster)}
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &ExitError{Code: 2, Err: fmt.Errorf("%s takes %s (got %d argument(s)); see `pgfm %s --help`", cmd.Name(), names, len(args), cmd.Name())}
		}
		return nil
	}
}
