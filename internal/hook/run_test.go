package hook

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable /bin/sh script into a temporary directory and
// returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// shellQuote quotes a path for a command line.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func TestRunPlaceholdersAreArguments(t *testing.T) {
	s := script(t, `printf '%s|%s|%s|%s|%s|%s' "$1" "$2" "$3" "$4" "$5" "$#"`)
	vars := Placeholders{NewPrimary: "192.0.2.11", FailedPrimary: "2001:db8::10", Node: "192.0.2.12", Type: "p", Owner: "pg user"}
	res := NewRunner(nil).Run(context.Background(), "script.fence", shellQuote(s)+` %p %f "%t-%u 100%%" '%h'`, vars, nil, 5*time.Second)
	if res.Outcome != OK || res.ExitCode != 0 || res.Err != nil {
		t.Fatalf("%+v", res)
	}
	if want := "192.0.2.11|2001:db8::10|p-pg user 100%|192.0.2.12||4"; res.Output != want {
		t.Errorf("output %q, want %q", res.Output, want)
	}
	if res.Duration <= 0 {
		t.Errorf("duration %v", res.Duration)
	}
}

func TestRunNoShell(t *testing.T) {
	s := script(t, `for a in "$@"; do printf '[%s]' "$a"; done`)
	res := NewRunner(nil).Run(context.Background(), "t", shellQuote(s)+` a;b $HOME * '>' x`, Placeholders{}, nil, 5*time.Second)
	if res.Outcome != OK || res.Output != "[a;b][$HOME][*][>][x]" {
		t.Errorf("%+v", res)
	}
}

func TestRunExitCodes(t *testing.T) {
	r := NewRunner(nil)
	ok := r.Run(context.Background(), "t", script(t, "echo fine"), Placeholders{}, nil, 5*time.Second)
	if ok.Outcome != OK || ok.ExitCode != 0 || ok.Output != "fine\n" || ok.Err != nil {
		t.Errorf("exit 0: %+v", ok)
	}
	bad := r.Run(context.Background(), "script.fence", script(t, "echo oops >&2; exit 3"), Placeholders{}, nil, 5*time.Second)
	if bad.Outcome != Failed || bad.ExitCode != 3 || bad.Output != "oops\n" {
		t.Errorf("exit 3: %+v", bad)
	}
	if bad.Err == nil || !strings.Contains(bad.Err.Error(), "script.fence") || !strings.Contains(bad.Err.Error(), "exited with status 3") {
		t.Errorf("exit 3 error: %v", bad.Err)
	}
	sig := r.Run(context.Background(), "t", script(t, "kill -TERM $$"), Placeholders{}, nil, 5*time.Second)
	if sig.Outcome != Failed || sig.ExitCode != -1 || sig.Err == nil {
		t.Errorf("killed by a signal: %+v", sig)
	}
}

func TestRunNotRun(t *testing.T) {
	for _, cmd := range []string{"", "   "} {
		res := NewRunner(nil).Run(context.Background(), "script.fence", cmd, Placeholders{}, nil, time.Second)
		if res.Outcome != NotRun || res.Err != nil {
			t.Errorf("%q: %+v", cmd, res)
		}
	}
}

func TestRunCannotStart(t *testing.T) {
	r := NewRunner(nil)
	for cmd, want := range map[string]string{
		"/no/such/program --x":     "hook: script.fence: cannot start /no/such/program: ",
		"no-such-program-for-pgfm": "executable file not found in $PATH",
		`/bin/true "unclosed`:      "unclosed double quote",
	} {
		res := r.Run(context.Background(), "script.fence", cmd, Placeholders{}, nil, time.Second)
		if res.Outcome != Failed || res.ExitCode != -1 || res.Err == nil || !strings.Contains(res.Err.Error(), want) {
			t.Errorf("%q: %+v, want error containing %q", cmd, res, want)
		}
	}
	res := r.Run(context.Background(), "t", "/no/such/program", Placeholders{}, nil, time.Second)
	if !errors.Is(res.Err, os.ErrNotExist) {
		t.Errorf("missing program error %v is not os.ErrNotExist", res.Err)
	}
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("echo"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = r.Run(context.Background(), "t", notExec, Placeholders{}, nil, time.Second)
	if res.Outcome != Failed || !errors.Is(res.Err, os.ErrPermission) {
		t.Errorf("not executable: %+v", res)
	}
}

// childScript starts a background `sleep 60` in the script's process group,
// writes its pid to a file and then runs tailCmd.
func childScript(t *testing.T, tailCmd string) (path, pidFile string) {
	pidFile = filepath.Join(t.TempDir(), "child.pid")
	return script(t, "sleep 60 &\necho $! > "+shellQuote(pidFile)+"\n"+tailCmd), pidFile
}

// waitGone waits for the process in pidFile to be gone (or a zombie, which
// is gone too: it only waits for its new parent to reap it).
func waitGone(t *testing.T, pidFile string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return
			}
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond) // polling a real process: nothing to wait on
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	s, pidFile := childScript(t, "echo started\nsleep 60")
	start := time.Now()
	res := NewRunner(nil).Run(context.Background(), "script.fence", s, Placeholders{}, nil, 300*time.Millisecond)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	if res.Outcome != TimedOut || res.ExitCode != -1 || res.Output != "started\n" {
		t.Errorf("%+v", res)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Err.Error(), "timed out after") {
		t.Errorf("err %v", res.Err)
	}
	waitGone(t, pidFile)
}

func TestRunLeftoversKilled(t *testing.T) {
	// The background child keeps the output pipe open: Run must neither wait
	// for it nor leave it running.
	s, pidFile := childScript(t, "echo done")
	start := time.Now()
	res := NewRunner(nil).Run(context.Background(), "t", s, Placeholders{}, nil, 30*time.Second)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	if res.Outcome != OK || res.Output != "done\n" {
		t.Errorf("%+v", res)
	}
	waitGone(t, pidFile)
}

func TestRunCancelKills(t *testing.T) {
	s, pidFile := childScript(t, "echo started\nsleep 60")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- NewRunner(nil).Run(ctx, "t", s, Placeholders{}, nil, time.Minute) }()
	waitFile(t, pidFile)
	cancel()
	select {
	case res := <-done:
		if res.Outcome != Failed || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("%+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitGone(t, pidFile)

	// A context already done: nothing starts.
	res := NewRunner(nil).Run(ctx, "t", "/bin/true", Placeholders{}, nil, time.Minute)
	if res.Outcome != Failed || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("done context: %+v", res)
	}
}

// waitFile waits for a script to have written path (and a newline).
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written", path)
		}
		time.Sleep(10 * time.Millisecond) // polling a real process
	}
}

func TestRunOutputBounded(t *testing.T) {
	s := script(t, "head -c 1048576 /dev/zero | tr '\\0' a\nprintf END")
	res := NewRunner(nil).Run(context.Background(), "t", s, Placeholders{}, nil, 10*time.Second)
	if res.Outcome != OK {
		t.Fatalf("%+v", res.Err)
	}
	if len(res.Output) != MaxOutput || !strings.HasSuffix(res.Output, "aaaEND") {
		t.Errorf("output: %d bytes, ending %q", len(res.Output), res.Output[max(0, len(res.Output)-10):])
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("PGFM_TEST_INHERITED", "yes")
	s := script(t, `printf '%s|%s|%s|%s|%s' "$PGFM_CLUSTER" "$PGFM_EVENT" "$PGFM_NEW_PRIMARY" "$PGFM_TEST_INHERITED" "$EXTRA"; read x && echo "stdin not empty"; exit 0`)
	env := Env("main", "failover", Placeholders{NewPrimary: "192.0.2.11"})
	env["EXTRA"] = "x y"
	res := NewRunner(nil).Run(context.Background(), "t", s, Placeholders{}, env, 5*time.Second)
	if res.Outcome != OK || res.Output != "main|failover|192.0.2.11|yes|x y" {
		t.Errorf("%+v", res)
	}
	if _, ok := env["PGFM_FAILED_PRIMARY"]; ok {
		t.Error("Env sets unset placeholders")
	}
	bad := NewRunner(nil).Run(context.Background(), "t", s, Placeholders{}, map[string]string{"A=B": "c"}, 5*time.Second)
	if bad.Outcome != Failed || bad.Err == nil {
		t.Errorf("bad env name: %+v", bad)
	}
}

func TestRunOneAtATime(t *testing.T) {
	dir := t.TempDir()
	// Each run fails if it finds the other's marker: they must not overlap.
	s := script(t, `m=`+shellQuote(dir)+`/running
[ -e "$m" ] && { echo overlap; exit 1; }
: > "$m"; sleep 0.2; rm "$m"`)
	r := NewRunner(nil)
	results := make(chan Result, 3)
	for range 3 {
		go func() { results <- r.Run(context.Background(), "t", s, Placeholders{}, nil, 10*time.Second) }()
	}
	for range 3 {
		if res := <-results; res.Outcome != OK {
			t.Errorf("%+v", res)
		}
	}

	// A run waiting for its turn gives up at its deadline.
	hold := script(t, "sleep 1")
	held := make(chan Result)
	go func() { held <- r.Run(context.Background(), "hold", hold, Placeholders{}, nil, 10*time.Second) }()
	waitBusy(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res := r.Run(ctx, "t", "/bin/true", Placeholders{}, nil, 10*time.Second)
	if res.Outcome != TimedOut || !strings.Contains(res.Err.Error(), "not started") {
		t.Errorf("waiting run: %+v", res)
	}
	if res := <-held; res.Outcome != OK {
		t.Errorf("holding run: %+v", res)
	}
}

// waitBusy waits until r is running something.
func waitBusy(t *testing.T, r *Runner) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(r.turn) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("runner never busy")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 4}
	for _, s := range []string{"ab", "cd", "e", "fghij", "k"} {
		_, _ = tl.Write([]byte(s))
	}
	if tl.String() != "hijk" || tl.dropped != 7 {
		t.Errorf("%q dropped %d", tl.String(), tl.dropped)
	}
}
