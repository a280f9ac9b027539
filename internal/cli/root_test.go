package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeConfig writes a minimal valid CLUSTER.properties for a node whose
// agent would serve on 127.0.0.1 but does not run; it returns the config dir
// and the state dir.
func writeConfig(t *testing.T, cluster string) (dir, state string) {
	t.Helper()
	dir, state = t.TempDir(), t.TempDir()
	props := fmt.Sprintf(`db.user=postgres
db.port=5432
db.database=postgres
db.data.dir=/tmp/x
bind.address=127.0.0.1:%d
admin.port=%d
state.dir=%s
`, freePort(t), freePort(t), state)
	if err := os.WriteFile(filepath.Join(dir, cluster+".properties"), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, state
}

func TestRunUsageErrors(t *testing.T) {
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"cluster-status without cluster", []string{"--config-dir", empty, "cluster-status"}, []string{"cluster-status takes CLUSTER", "got 0"}},
		{"cluster-status-json with two args", []string{"--config-dir", empty, "cluster-status-json", "a", "b"}, []string{"cluster-status-json takes CLUSTER", "got 2"}},
		{"allow-node without address", []string{"--config-dir", empty, "allow-node", "main"}, []string{"allow-node takes CLUSTER ADDRESS"}},
		{"stop-cluster without cluster", []string{"--config-dir", empty, "stop-cluster"}, []string{"stop-cluster takes CLUSTER"}},
		{"invalid cluster name", []string{"--config-dir", empty, "cluster-status", "bad/name"}, []string{`"bad/name"`, "not allowed"}},
		{"cluster name starting with a dot", []string{"--config-dir", empty, "node-status-json", ".hidden"}, []string{"starts with '.'"}},
		{"missing properties file", []string{"--config-dir", empty, "cluster-status", "main"},
			[]string{filepath.Join(empty, "main.properties"), "cannot read the properties file"}},
		{"missing properties file, admin command", []string{"--config-dir", empty, "allow-node", "main", "10.0.0.9"},
			[]string{filepath.Join(empty, "main.properties")}},
		{"set-priority not a number", []string{"--config-dir", empty, "set-priority", "main", "10.0.0.9", "first"}, []string{`priority "first"`, "positive whole number"}},
		{"set-priority negative", []string{"--config-dir", empty, "set-priority", "main", "10.0.0.9", "--", "-1"}, []string{`priority "-1"`}},
		{"maintenance neither on nor off", []string{"--config-dir", empty, "maintenance", "main", "maybe"}, []string{`maintenance "maybe"`, "give on or off"}},
		{"promote with two targets", []string{"--config-dir", empty, "promote", "main", "-switchover", "-sourcenode", "10.0.0.2", "-candidate", "10.0.0.3"}, []string{"name different standbys"}},
		{"promote with an unknown EFM flag", []string{"--config-dir", empty, "promote", "main", "-forcefully"}, []string{"unknown shorthand flag"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestRunConfigDirFromEnv(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PGFM_CONFIG_DIR", empty)
	code, _, stderr := run(t, "cluster-status", "main")
	if code != 2 || !strings.Contains(stderr, filepath.Join(empty, "main.properties")) {
		t.Errorf("code %d, stderr:\n%s", code, stderr)
	}
}

func TestRunAgentNotRunning(t *testing.T) {
	dir, state := writeConfig(t, "main")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"cluster-status", []string{"cluster-status", "main"}, nil},
		{"cluster-status-json", []string{"cluster-status-json", "main"}, nil},
		{"node-status-json", []string{"node-status-json", "main"}, nil},
		{"allow-node without token", []string{"allow-node", "main", "10.0.0.9"}, []string{"no admin token at " + filepath.Join(state, "admin.token")}},
		{"disallow-node without token", []string{"disallow-node", "main", "10.0.0.9"}, []string{"no admin token"}},
		{"stop-cluster without token", []string{"stop-cluster", "main"}, []string{"no admin token"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"--config-dir", dir}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			for _, w := range append([]string{"is not running", "systemctl start pgfm@main"}, tc.want...) {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// With a token but no agent listening, an admin command also says the agent
// is not running (the client cannot connect).
func TestRunAdminAgentNotRunningWithToken(t *testing.T) {
	dir, state := writeConfig(t, "main")
	if err := os.WriteFile(filepath.Join(state, "admin.token"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "--config-dir", dir, "allow-node", "main", "10.0.0.9")
	if code != 1 || !strings.Contains(stderr, "is not running") || strings.Contains(stderr, "no admin token") {
		t.Errorf("code %d, stderr:\n%s", code, stderr)
	}
}

func TestRunHelpListsCommands(t *testing.T) {
	code, stdout, stderr := run(t, "--help")
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	for _, c := range []string{"agent", "cluster-status", "cluster-status-json", "node-status-json", "allow-node", "disallow-node", "stop-cluster",
		"resume", "promote", "set-priority", "maintenance", "replication-status", "create-standby", "reset-members"} {
		found := false
		for _, line := range strings.Split(stdout, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == c {
				found = true
			}
		}
		if !found {
			t.Errorf("help does not list %q:\n%s", c, stdout)
		}
	}
}

func TestRunUnknownCommand(t *testing.T) {
	code, _, stderr := run(t, "no-such-command")
	if code == 0 || !strings.Contains(stderr, "no-such-command") {
		t.Errorf("code %d, stderr:\n%s", code, stderr)
	}
}

func TestDoubleDash(t *testing.T) {
	got := doubleDash([]string{"promote", "prod", "-switchover", "-sourcenode=10.0.0.2", "-quiet", "--noscripts", "-x", "-json", "-slot", "s1", "-prompt"})
	want := []string{"promote", "prod", "--switchover", "--sourcenode=10.0.0.2", "--quiet", "--noscripts", "-x", "--json", "--slot", "s1", "--prompt"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
