package integration

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/testenv"
)

// A cluster whose db.user needs a password (scram-sha-256 in every
// pg_hba.conf), given as `pgfm encrypt prod --from-env` prints it: the
// agents form the cluster, see both databases up, and the witness reads
// replication from both; no agent logs the password. The cluster uses
// the user's own PKI (tls.*) instead of a cluster key, which no node has.
func TestDBPasswordEncrypted(t *testing.T) {
	const password = "app pw 'quoted'"
	dir := testenv.TempDir(t)
	enc := encryptFromEnv(t, dir, password)
	props := map[string]string{
		"db.user":               "pgfm_app",
		"db.password.encrypted": enc,
	}
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Witnesses: 1, Props: props})
	primary, standby, witness := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	maps.Copy(props, testenv.OwnPKI(t, dir, c.Nodes...))
	for _, n := range c.Nodes {
		n.WriteProperties(t, props)
		if err := os.Remove(n.ClusterKeyFile()); err != nil {
			t.Fatal(err)
		}
	}
	primary.PG.Exec(t, "CREATE ROLE pgfm_app LOGIN SUPERUSER PASSWORD 'app pw ''quoted'''")
	for _, n := range []*testenv.Node{primary, standby} {
		hba := filepath.Join(n.PG.DataDir, "pg_hba.conf")
		old, err := os.ReadFile(hba)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hba, append([]byte("host all pgfm_app 127.0.0.0/8 scram-sha-256\n"), old...), 0); err != nil {
			t.Fatal(err)
		}
		n.PG.Exec(t, "SELECT pg_reload_conf()")
	}
	c.StartAll(t)

	waitStatus(t, witness, 30*time.Second, "both databases up", func(st efmStatus, _ int) error {
		p, s := st.Nodes[primary.Host], st.Nodes[standby.Host]
		if p.Type != "Primary" || p.DB != "UP" || s.Type != "Standby" || s.DB != "UP" {
			return fmt.Errorf("primary %+v, standby %+v", p, s)
		}
		return nil
	})
	waitReplication(t, witness, 30*time.Second, "the standby streaming", func(rep httpapi.ReplicationReport, code int) error {
		if code != 0 || rep.Primary != primary.Host || len(rep.Standbys) != 1 || !rep.Standbys[0].Streaming() {
			return fmt.Errorf("exit %d, primary %s, standbys %+v", code, rep.Primary, rep.Standbys)
		}
		return nil
	})
	for _, n := range c.Nodes {
		if _, err := os.Stat(n.ClusterKeyFile()); !os.IsNotExist(err) {
			t.Errorf("%s has a cluster key file with tls.* set (%v)", n.Name, err)
		}
		if out := n.Output(); strings.Contains(out, "app pw") || strings.Contains(out, enc) {
			t.Errorf("agent %s logged the password or its encrypted form:\n%s", n.Name, out)
		}
	}
}

// encryptFromEnv runs `pgfm encrypt prod --from-env` with PGFMPASS set.
func encryptFromEnv(t *testing.T, dir, password string) string {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), "--config-dir", dir, "encrypt", "prod", "--from-env")
	cmd.Env = append(os.Environ(), "PGFMPASS="+password)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pgfm encrypt --from-env: %v", err)
	}
	return strings.TrimSpace(string(out))
}
