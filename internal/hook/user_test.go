package hook

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unprivileged is the existing user the tests switch to.
const unprivileged = "nobody"

// needRoot skips a test that switches users unless it runs as root (as in
// CI) and returns the unprivileged user.
func needRoot(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	u, err := user.Lookup(unprivileged)
	if err != nil {
		t.Skipf("no user %s on this host: %v", unprivileged, err)
	}
	return u
}

// userDir returns a directory that u owns and can reach (t.TempDir's
// parents are private to root).
func userDir(t *testing.T, u *user.User) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgfm-hook-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// userScript writes an executable /bin/sh script u can run.
func userScript(t *testing.T, u *user.User, body string) string {
	t.Helper()
	path := filepath.Join(userDir(t, u), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunAsUser(t *testing.T) {
	u := needRoot(t)
	r := NewRunner(nil)
	if err := r.AsUser(unprivileged); err != nil {
		t.Fatal(err)
	}
	if r.User() != unprivileged {
		t.Errorf("User() = %q", r.User())
	}
	t.Setenv("HOME", "/root")
	t.Setenv("USER", "root")
	t.Setenv("LOGNAME", "root")
	s := userScript(t, u, `echo "$(id -u) $(id -g) $(id -G)"; echo "$HOME $USER $LOGNAME $PGFM_CLUSTER"; pwd`)
	res := r.Run(context.Background(), "script.fence", s, Placeholders{}, map[string]string{"PGFM_CLUSTER": "main"}, 5*time.Second)
	if res.Outcome != OK {
		t.Fatalf("%+v", res)
	}
	groups, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	dir := "/"
	if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
		dir = u.HomeDir
	}
	lines := strings.Split(strings.TrimSpace(res.Output), "\n")
	if len(lines) != 3 {
		t.Fatalf("output %q", res.Output)
	}
	ids := strings.Fields(lines[0])
	if len(ids) < 3 || ids[0] != u.Uid || ids[1] != u.Gid {
		t.Errorf("uid gid groups = %q, want %s %s %v", lines[0], u.Uid, u.Gid, groups)
	}
	if got := ids[2:]; !sameSet(got, groups) {
		t.Errorf("groups %v, want %v (root's groups must be gone)", got, groups)
	}
	if want := u.HomeDir + " " + u.Username + " " + u.Username + " main"; lines[1] != want {
		t.Errorf("environment %q, want %q", lines[1], want)
	}
	if lines[2] != dir {
		t.Errorf("working directory %q, want %q", lines[2], dir)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Compact(slices.Sorted(slices.Values(a))), slices.Compact(slices.Sorted(slices.Values(b))))
}

// The process group of a script that runs as another user is still killed
// as a whole on timeout.
func TestRunAsUserTimeoutKillsGroup(t *testing.T) {
	u := needRoot(t)
	r := NewRunner(nil)
	if err := r.AsUser(unprivileged); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(userDir(t, u), "child.pid")
	s := userScript(t, u, "sleep 60 &\necho $! > "+shellQuote(pidFile)+"\necho started\nid -u\nsleep 60")
	start := time.Now()
	res := r.Run(context.Background(), "script.fence", s, Placeholders{}, nil, 500*time.Millisecond)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	if res.Outcome != TimedOut || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("%+v", res)
	}
	if res.Output != "started\n"+u.Uid+"\n" {
		t.Errorf("output %q: did it run as %s?", res.Output, unprivileged)
	}
	waitGone(t, pidFile)
}

func TestAsUserMissing(t *testing.T) {
	const missing = "pgfm-no-such-user"
	if os.Geteuid() != 0 {
		t.Skip("a user is looked up only when the agent is root")
	}
	r := NewRunner(nil)
	err := r.AsUser(missing)
	if err == nil || !strings.Contains(err.Error(), `user "pgfm-no-such-user" does not exist on this host`) {
		t.Fatalf("AsUser(%q) = %v", missing, err)
	}
	if !errors.As(err, new(user.UnknownUserError)) {
		t.Errorf("%v does not wrap user.UnknownUserError", err)
	}
	if r.User() != "" {
		t.Errorf("a failed AsUser changed the runner: User() = %q", r.User())
	}
	if err := r.AsUser(""); err == nil {
		t.Error("AsUser(\"\") succeeded")
	}
}

// root, named explicitly, and an agent that is not root run scripts as the
// agent itself.
func TestAsUserNoSwitch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	self := strconv.Itoa(os.Geteuid())
	for name, setup := range map[string]func(t *testing.T, r *Runner) error{
		"root": func(t *testing.T, r *Runner) error { return r.AsUser("root") },
		"not root": func(t *testing.T, r *Runner) error {
			geteuid = func() int { return 1000 }
			t.Cleanup(func() { geteuid = os.Geteuid })
			return r.AsUser("pgfm-no-such-user") // not looked up: no error
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := NewRunner(nil)
			if err := setup(t, r); err != nil {
				t.Fatal(err)
			}
			if r.User() != "" {
				t.Errorf("User() = %q", r.User())
			}
			res := r.Run(context.Background(), "t", script(t, "id -u"), Placeholders{}, nil, 5*time.Second)
			if res.Outcome != OK || strings.TrimSpace(res.Output) != self {
				t.Errorf("%+v, want uid %s", res, self)
			}
		})
	}
}
