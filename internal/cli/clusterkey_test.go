package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/pki"
)

func TestClusterKeyCommand(t *testing.T) {
	dir, _ := writeConfig(t, "main")
	path := filepath.Join(dir, "main.key")
	code, _, stderr := run(t, "--config-dir", dir, "cluster-key", "main")
	if code != 1 || !strings.Contains(stderr, "no cluster key at "+path) {
		t.Fatalf("without a key: exit %d, %s", code, stderr)
	}
	k, err := pki.NewClusterKey("main")
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteClusterKey(path, k); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "--config-dir", dir, "cluster-key", "main")
	if code != 0 || !strings.Contains(stdout, path+": SHA256 "+strings.TrimPrefix(fingerprint(k), "SHA256 ")) {
		t.Fatalf("fingerprint: exit %d, %s %s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "--config-dir", dir, "cluster-key", "main", "--rotate")
	if code != 0 || !strings.Contains(stdout, "restart the agents one at a time") {
		t.Fatalf("rotate: exit %d, %s %s", code, stdout, stderr)
	}
	var steps []pki.ClusterKey
	for _, n := range []string{"1", "2", "3"} {
		s, err := pki.LoadClusterKey(filepath.Join(dir, "main.key.step"+n))
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	if !steps[0].Cert.Equal(k.Cert) || steps[1].Cert.Equal(k.Cert) || !steps[1].Cert.Equal(steps[2].Cert) || len(steps[2].Trusted) != 0 {
		t.Error("the steps are not current+new, new+current, new")
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "PRIVATE KEY") {
		t.Error("the current key file was changed")
	}
	if code, _, stderr = run(t, "--config-dir", dir, "cluster-key", "main", "--rotate"); code != 1 || !strings.Contains(stderr, "remove the step files") {
		t.Errorf("a second rotation over the first's files: exit %d, %s", code, stderr)
	}
}
