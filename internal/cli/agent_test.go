package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// An agent that cannot start because of its configuration exits with the
// refusal code, which the systemd unit does not restart.
func TestAgentBadConfigIsRefused(t *testing.T) {
	empty := t.TempDir()
	code, _, stderr := run(t, "--config-dir", empty, "agent", "main")
	if code != exitAgentRefused {
		t.Fatalf("exit %d, want %d (refused); stderr:\n%s", code, exitAgentRefused, stderr)
	}
	if !strings.Contains(stderr, filepath.Join(empty, "main.properties")) {
		t.Fatalf("the refusal does not name the missing file:\n%s", stderr)
	}
}

// The unit restarts what a restart can fix: a failure (1) and a crash (Go
// exits 2 on a panic or a runtime fatal error), never a refusal or a
// removal.
func TestUnitRestartsCrashesNotRefusals(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	unit, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "packaging", "pgfm@.service"))
	if err != nil {
		t.Fatal(err)
	}
	var prevent []int
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "RestartPreventExitStatus="); ok {
			for _, f := range strings.Fields(v) {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("RestartPreventExitStatus has %q", f)
				}
				prevent = append(prevent, n)
			}
		}
	}
	slices.Sort(prevent)
	want := []int{exitAgentRemoved, exitAgentRefused}
	slices.Sort(want)
	if !slices.Equal(prevent, want) {
		t.Fatalf("RestartPreventExitStatus=%v, want %v (removed, refused)", prevent, want)
	}
	for _, c := range []int{exitAgentFailed, 2} {
		if slices.Contains(prevent, c) {
			t.Fatalf("exit %d must be restarted, but the unit prevents it", c)
		}
	}
}
