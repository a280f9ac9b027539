package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pgfm/pgfm/internal/pki"
)

func clusterKeyCmd(e *env) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "cluster-key CLUSTER [--rotate]",
		Short: "Show the fingerprint of CLUSTER's key, or prepare its replacement",
		Long: `The cluster key (cluster.key.file, default CONFIGDIR/CLUSTER.key) is the
cluster's certificate authority: the agent that starts the cluster creates it,
and every other node needs a copy (mode 0600) before its first start. Without
flags this prints its fingerprint, the same on every node that holds the same key.

--rotate writes a new key in three steps next to the current one
(CLUSTER.key.step1, .step2, .step3). Copy each step to every node in turn
(as cluster.key.file) and restart the agents one at a time before the next
step; at every moment all running agents trust each other. See docs/security.md.`,
		Args: exactArgs(1, "CLUSTER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, _, err := e.load(args[0])
			if err != nil {
				return err
			}
			path := cfg.TLS.ClusterKeyFile
			if cfg.TLS.OwnPKI() {
				return &ExitError{Code: 1, Err: fmt.Errorf("cluster %s uses its own PKI (tls.ca.file, tls.cert.file, tls.key.file): rotate it with your own tools", args[0])}
			}
			k, err := pki.LoadClusterKey(path)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					err = fmt.Errorf("no cluster key at %s: the agent that starts the cluster creates it; copy it from a running member", path)
				}
				return &ExitError{Code: 1, Err: err}
			}
			fmt.Fprintf(e.stdout, "%s: %s\n", path, fingerprint(k))
			if !rotate {
				return nil
			}
			next, err := pki.NewClusterKey(cfg.Cluster)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			for i, step := range pki.Rotation(k, next) {
				p := fmt.Sprintf("%s.step%d", path, i+1)
				if err := pki.WriteClusterKey(p, step); err != nil {
					return &ExitError{Code: 1, Err: fmt.Errorf("%v (remove the step files of an earlier rotation first)", err)}
				}
				fmt.Fprintf(e.stdout, "step %d: %s (%s)\n", i+1, p, []string{
					"the current key, trusting the new one",
					"the new key, trusting the current one",
					"the new key alone",
				}[i])
			}
			fmt.Fprintf(e.stdout, "For each step in turn: copy its file to %s on every node (mode 0600), then restart the agents one at a time (systemctl restart pgfm@%s).\n", path, cfg.Cluster)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "write a new key as three step files next to the current one")
	return cmd
}

// fingerprint names a key by its CA certificate (SHA-256, as openssl
// x509 -fingerprint -sha256 shows it, without colons).
func fingerprint(k pki.ClusterKey) string {
	sum := sha256.Sum256(k.Cert.Raw)
	return "SHA256 " + hex.EncodeToString(sum[:])
}
