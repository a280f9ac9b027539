// Package examples_test runs the example scripts under examples/ against
// fake commands that record how they were called.
package examples_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	arn    = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/pgfm-primary/0123456789abcdef"
	script = "../../examples/aws-elbv2-fence.sh"
)

// fakeAWS is an `aws` command, first on PATH, that appends its arguments
// (one call per line, tab-separated) to log, and exits 1 when its
// subcommand (deregister-targets, register-targets, wait) is named in
// FAKE_AWS_FAIL.
const fakeAWS = `#!/bin/sh
for a in "$@"; do printf '%s\t' "$a"; done >> "$FAKE_AWS_LOG"
printf '\n' >> "$FAKE_AWS_LOG"
for a in "$@"; do
	case " $FAKE_AWS_FAIL " in
	*" $a "*) echo "An error occurred (AccessDenied) when calling $a" >&2; exit 1 ;;
	esac
done
exit 0
`

type run struct {
	calls [][]string
	code  int
	out   string
}

// runFence runs the script with args in an environment of env only (plus
// PATH with the fake aws first), through shell ("" = the file itself).
func runFence(t *testing.T, shell string, env map[string]string, args ...string) run {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "aws"), []byte(fakeAWS), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "calls")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if shell == "" {
		cmd = exec.Command(path, args...)
	} else {
		cmd = exec.Command(shell, append([]string{path}, args...)...)
	}
	cmd.Env = []string{
		"PATH=" + dir + string(os.PathListSeparator) + "/usr/bin:/bin",
		"FAKE_AWS_LOG=" + logPath,
		// Never read a real configuration of the host running the tests.
		"PGFM_ELBV2_CONFIG=" + filepath.Join(dir, "no-such.conf"),
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	r := run{out: string(out)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("cannot run %s: %v", script, err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line != "" {
			r.calls = append(r.calls, strings.Split(strings.TrimSuffix(line, "\t"), "\t"))
		}
	}
	return r
}

func call(words ...string) []string { return words }

func deregister(targets ...string) []string {
	return append([]string{"elbv2", "deregister-targets", "--target-group-arn", arn, "--targets"}, targets...)
}

func register(target string) []string {
	return []string{"elbv2", "register-targets", "--target-group-arn", arn, "--targets", target}
}

// shells are the interpreters the script must work with: as an executable
// (its #!/bin/sh), and through dash and bash when installed.
func shells() []string {
	out := []string{""}
	for _, sh := range []string{"dash", "bash"} {
		if p, err := exec.LookPath(sh); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func TestAWSELBv2Fence(t *testing.T) {
	instances := map[string]string{
		"PGFM_ELBV2_TARGET_GROUP_ARN": arn,
		"PGFM_ELBV2_TARGETS":          "10.0.1.10=i-0aaaaaaaaaaaaaaaa,10.0.2.10=i-0bbbbbbbbbbbbbbbb 10.0.3.10=i-0cccccccccccccccc",
	}
	plus := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		ok    bool
		calls [][]string
		says  string // in the output
	}{
		{
			name: "deregister the failed primary, register the new one",
			env:  instances, args: []string{"10.0.2.10", "10.0.1.10"}, ok: true,
			calls: [][]string{deregister("Id=i-0aaaaaaaaaaaaaaaa"), register("Id=i-0bbbbbbbbbbbbbbbb")},
		},
		{
			name: "deregistration fails: non-zero, the new primary is not registered",
			env:  plus(instances, "FAKE_AWS_FAIL", "deregister-targets"), args: []string{"10.0.2.10", "10.0.1.10"},
			calls: [][]string{deregister("Id=i-0aaaaaaaaaaaaaaaa")}, says: "could not deregister the failed primary's target; not promoting",
		},
		{
			name: "registration fails: non-zero",
			env:  plus(instances, "FAKE_AWS_FAIL", "register-targets"), args: []string{"10.0.2.10", "10.0.1.10"},
			calls: [][]string{deregister("Id=i-0aaaaaaaaaaaaaaaa"), register("Id=i-0bbbbbbbbbbbbbbbb")},
			says:  "could not register the new primary's target",
		},
		{
			name: "failed primary not mapped: non-zero, nothing called",
			env:  instances, args: []string{"10.0.2.10", "10.0.9.9"},
			says: "no target ID for the failed primary 10.0.9.9",
		},
		{
			name: "new primary not mapped: non-zero, nothing called",
			env:  instances, args: []string{"10.0.9.9", "10.0.1.10"},
			says: "no target ID for the new primary 10.0.9.9",
		},
		{
			name: "no target group: non-zero, nothing called",
			env:  map[string]string{"PGFM_ELBV2_TARGETS": instances["PGFM_ELBV2_TARGETS"]}, args: []string{"10.0.2.10", "10.0.1.10"},
			says: "PGFM_ELBV2_TARGET_GROUP_ARN is not set",
		},
		{
			name: "no arguments", env: instances, says: "usage:",
		},
		{
			name: "no failed primary named: every other mapped target goes",
			env:  instances, args: []string{"10.0.2.10", ""}, ok: true,
			calls: [][]string{deregister("Id=i-0aaaaaaaaaaaaaaaa", "Id=i-0cccccccccccccccc"), register("Id=i-0bbbbbbbbbbbbbbbb")},
		},
		{
			name: "ip targets with a port and aws options",
			env: map[string]string{
				"PGFM_ELBV2_TARGET_GROUP_ARN": arn, "PGFM_ELBV2_TARGET_TYPE": "ip", "PGFM_ELBV2_PORT": "5432",
				"PGFM_ELBV2_AWS_OPTIONS": "--region eu-west-1 --profile pgfm",
			},
			args: []string{"10.0.2.10", "10.0.1.10"}, ok: true,
			calls: [][]string{
				append([]string{"--region", "eu-west-1", "--profile", "pgfm"}, deregister("Id=10.0.1.10,Port=5432")...),
				append([]string{"--region", "eu-west-1", "--profile", "pgfm"}, register("Id=10.0.2.10,Port=5432")...),
			},
		},
		{
			name: "IPv6 node addresses",
			env: map[string]string{
				"PGFM_ELBV2_TARGET_GROUP_ARN": arn,
				"PGFM_ELBV2_TARGETS":          "fd00::10=i-0aaaaaaaaaaaaaaaa fd00::11=i-0bbbbbbbbbbbbbbbb",
			},
			args: []string{"fd00::11", "fd00::10"}, ok: true,
			calls: [][]string{deregister("Id=i-0aaaaaaaaaaaaaaaa"), register("Id=i-0bbbbbbbbbbbbbbbb")},
		},
		{
			name: "wait for the deregistration",
			env:  plus(instances, "PGFM_ELBV2_WAIT", "1"), args: []string{"10.0.2.10", "10.0.1.10"}, ok: true,
			calls: [][]string{
				deregister("Id=i-0aaaaaaaaaaaaaaaa"),
				call("elbv2", "wait", "target-deregistered", "--target-group-arn", arn, "--targets", "Id=i-0aaaaaaaaaaaaaaaa"),
				register("Id=i-0bbbbbbbbbbbbbbbb"),
			},
		},
		{
			name: "the wait fails: non-zero, not registered",
			env:  plus(instances, "PGFM_ELBV2_WAIT", "1", "FAKE_AWS_FAIL", "wait"), args: []string{"10.0.2.10", "10.0.1.10"},
			calls: [][]string{
				deregister("Id=i-0aaaaaaaaaaaaaaaa"),
				call("elbv2", "wait", "target-deregistered", "--target-group-arn", arn, "--targets", "Id=i-0aaaaaaaaaaaaaaaa"),
			},
			says: "did not finish deregistering",
		},
		{
			name: "both primaries the same target",
			env:  plus(instances, "PGFM_ELBV2_TARGETS", "10.0.1.10=i-0aaaaaaaaaaaaaaaa 10.0.2.10=i-0aaaaaaaaaaaaaaaa"),
			args: []string{"10.0.2.10", "10.0.1.10"}, says: "map to the same target",
		},
		{
			name: "bad target type",
			env:  plus(instances, "PGFM_ELBV2_TARGET_TYPE", "lambda"), args: []string{"10.0.2.10", "10.0.1.10"},
			says: "give instance or ip",
		},
	}
	for _, shell := range shells() {
		name := "executable"
		if shell != "" {
			name = filepath.Base(shell)
		}
		t.Run(name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := runFence(t, shell, tc.env, tc.args...)
					if (r.code == 0) != tc.ok {
						t.Errorf("exit code %d, want success=%v; output:\n%s", r.code, tc.ok, r.out)
					}
					if !reflect.DeepEqual(r.calls, tc.calls) {
						t.Errorf("aws calls:\n got %q\nwant %q\noutput:\n%s", r.calls, tc.calls, r.out)
					}
					if !strings.Contains(r.out, tc.says) {
						t.Errorf("output does not say %q:\n%s", tc.says, r.out)
					}
				})
			}
		})
	}
}

// TestAWSELBv2FenceConfigFile: the settings may come from a file
// (PGFM_ELBV2_CONFIG) instead of the environment.
func TestAWSELBv2FenceConfigFile(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "fence.conf")
	err := os.WriteFile(conf, []byte("PGFM_ELBV2_TARGET_GROUP_ARN="+arn+"\nPGFM_ELBV2_TARGETS='10.0.1.10=i-01 10.0.2.10=i-02'\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	r := runFence(t, "", map[string]string{"PGFM_ELBV2_CONFIG": conf}, "10.0.2.10", "10.0.1.10")
	want := [][]string{deregister("Id=i-01"), register("Id=i-02")}
	if r.code != 0 || !reflect.DeepEqual(r.calls, want) {
		t.Errorf("exit %d, calls %q, want 0 and %q; output:\n%s", r.code, r.calls, want, r.out)
	}
}
