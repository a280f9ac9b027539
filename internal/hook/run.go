package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Outcome is how a script run ended. Only OK means the script ran and
// succeeded; NotRun means no script was configured. A caller that must not
// go on without the script (script.fence: "not fenced" means "do not
// promote") treats every other outcome as a refusal.
type Outcome int

const (
	NotRun   Outcome = iota // empty command line: nothing to run
	OK                      // exit status 0
	Failed                  // non-zero exit, killed by a signal, could not start, bad command line, or cancelled
	TimedOut                // still running at the timeout (or the context's deadline): its process group was killed
)

func (o Outcome) String() string {
	switch o {
	case NotRun:
		return "not run"
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case TimedOut:
		return "timed out"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is what one run of a script did.
type Result struct {
	Outcome  Outcome
	ExitCode int           // the exit status; -1 when the script did not exit by itself or did not start
	Output   string        // stdout and stderr interleaved, at most the last MaxOutput bytes
	Duration time.Duration // from start to the end of the run (0 when not started)
	Err      error         // why it was not OK; nil for OK and NotRun
}

// MaxOutput is how much of a script's output a Result keeps: the last 64 KiB.
const MaxOutput = 64 << 10

// DefaultTimeout is used when Run is given a timeout of 0 or less
// (script.timeout's default).
const DefaultTimeout = 30 * time.Second

// outputGrace bounds how long Run waits, after the script and its process
// group are gone, for the output pipe to close: a process that left the group
// (setsid) could otherwise keep it open for ever.
const outputGrace = 2 * time.Second

// Runner runs scripts one at a time.
//
// Never two runs at once: the scripts act on things outside pgfm that a
// second run could interleave with (a fence and a post-promotion script both
// touching the old primary, a load balancer detach racing an attach), EFM
// runs them one after the other too, and every run is bounded by its
// timeout, so the wait is bounded. A run waiting for its turn gives up when
// its context ends. Give the Notifier a Runner of its own, so that a
// notification never waits behind a fence script.
type Runner struct {
	log  *slog.Logger
	turn chan struct{} // a one-slot semaphore: a mutex whose wait honours ctx
	as   *account      // the user scripts run as (AsUser); nil: the agent's own
}

// NewRunner returns a Runner that logs every run to log (nil: discard).
func NewRunner(log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{log: log, turn: make(chan struct{}, 1)}
}

// Run runs the script cmdline, named name in logs and errors (e.g.
// "script.fence"). The placeholders' values are checked first (see
// Placeholders): a value that is not what it must be (%p, %f or %h not an
// IP address) fails the run, and nothing is started. The command line is
// split into words (see Split), then the placeholders are expanded in each
// word; the program is run directly, without a shell, in a process group
// of its own, as the user named by AsUser, with stdin /dev/null,
// os.Environ() plus env, and the combined output captured (the last
// MaxOutput bytes). When the timeout expires or ctx ends, the whole process
// group is killed with SIGKILL; when the script exits, whatever it left
// running in its process group is killed too (a script that wants a daemon
// must start it in a session of its own, with setsid).
//
// An empty command line returns NotRun at once. Run never returns before
// the script's process group is gone.
func (r *Runner) Run(ctx context.Context, name, cmdline string, vars Placeholders, env map[string]string, timeout time.Duration) Result {
	return r.run(ctx, name, cmdline, vars, nil, env, timeout)
}

// run is Run with extra arguments appended to the expanded argv, untouched
// by placeholder expansion (the notification script's subject and body).
func (r *Runner) run(ctx context.Context, name, cmdline string, vars Placeholders, extra []string, env map[string]string, timeout time.Duration) Result {
	if strings.TrimSpace(cmdline) == "" {
		return Result{Outcome: NotRun, ExitCode: -1}
	}
	if err := vars.check(); err != nil {
		res := Result{Outcome: Failed, ExitCode: -1, Err: fmt.Errorf("hook: refusing to run %s: %w", name, err)}
		r.log.Error("script not run", "script", name, "err", res.Err)
		return res
	}
	args, err := argv(cmdline, vars)
	if err == nil {
		err = checkEnv(env)
	}
	if err != nil {
		res := Result{Outcome: Failed, ExitCode: -1, Err: fmt.Errorf("hook: %s: %w", name, err)}
		r.log.Error("script not run", "script", name, "err", res.Err)
		return res
	}
	args = append(args, extra...)

	if ctx.Err() == nil {
		select {
		case r.turn <- struct{}{}:
			defer func() { <-r.turn }()
		case <-ctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		res := Result{Outcome: Failed, ExitCode: -1, Err: fmt.Errorf("hook: %s: not started: %w", name, err)}
		if errors.Is(err, context.DeadlineExceeded) {
			res.Outcome = TimedOut
		}
		r.log.Warn("script not run", "script", name, "err", res.Err)
		return res
	}

	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	res := r.exec(ctx, name, args, env, timeout)
	attrs := []any{"script", name, "argv", args, "outcome", res.Outcome.String(), "exit_code", res.ExitCode,
		"duration", res.Duration, "output", res.Output}
	if r.as != nil {
		attrs = append(attrs, "user", r.as.name)
	}
	if res.Outcome == OK {
		r.log.Info("script done", attrs...)
	} else {
		r.log.Warn("script did not succeed", append(attrs, "err", res.Err)...)
	}
	return res
}

// exec starts args and waits for it, its process group and its output.
func (r *Runner) exec(ctx context.Context, name string, args []string, env map[string]string, timeout time.Duration) Result {
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// The output goes through a pipe we own, not one of exec's: exec's Wait
	// would wait for every holder of the pipe (a background child) to close it.
	pr, pw, err := os.Pipe()
	if err != nil {
		return Result{Outcome: Failed, ExitCode: -1, Err: fmt.Errorf("hook: %s: output pipe: %w", name, err)}
	}
	defer pr.Close()

	cmd := exec.CommandContext(runCtx, args[0], args[1:]...)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.as != nil {
		// The user's HOME, USER and LOGNAME replace the agent's (exec
		// keeps the last of duplicate names); the caller's variables win.
		cmd.Env = append(cmd.Env, r.as.env...)
		cmd.SysProcAttr.Credential = r.as.cred
		cmd.Dir = r.as.dir
	}
	cmd.Env = append(cmd.Env, envList(env)...)
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	start := time.Now()
	err = cmd.Start()
	pw.Close() // the child holds its own copy
	if err != nil {
		return Result{Outcome: Failed, ExitCode: -1, Err: fmt.Errorf("hook: %s: cannot start %s: %w", name, args[0], err)}
	}
	out := &tail{max: MaxOutput}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, pr)
		close(copied)
	}()

	waitErr := cmd.Wait()
	// Whatever the script left in its group goes with it. The group keeps its
	// id while any member lives, so this cannot reach another process.
	_ = killGroup(cmd.Process.Pid)
	select {
	case <-copied:
	case <-time.After(outputGrace):
		pr.Close() // a process outside the group still holds the pipe
		<-copied
	}
	res := Result{ExitCode: cmd.ProcessState.ExitCode(), Duration: time.Since(start), Output: out.String()}
	if out.dropped > 0 {
		r.log.Debug("script output truncated", "script", name, "dropped_bytes", out.dropped)
	}

	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
		res.Outcome = OK
	case runCtx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		res.Outcome, res.ExitCode = Failed, -1
		res.Err = fmt.Errorf("hook: %s: cancelled; its process group was killed: %w", name, ctx.Err())
	case runCtx.Err() != nil: // our timeout, or the caller's deadline
		res.Outcome, res.ExitCode = TimedOut, -1
		res.Err = fmt.Errorf("hook: %s: timed out after %s; its process group was killed: %w",
			name, res.Duration.Round(time.Millisecond), context.DeadlineExceeded)
	case errors.As(waitErr, &exitErr) && res.ExitCode >= 0:
		res.Outcome = Failed
		res.Err = fmt.Errorf("hook: %s: %s exited with status %d", name, args[0], res.ExitCode)
	default:
		res.Outcome = Failed
		res.Err = fmt.Errorf("hook: %s: %s: %w", name, args[0], waitErr) // killed by a signal
	}
	return res
}

// killGroup sends SIGKILL to the process group pgid; a group already gone
// is not an error.
func killGroup(pgid int) error {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// checkEnv refuses variable names that would corrupt the environment.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("invalid environment variable %q", k)
		}
	}
	return nil
}

// envList renders env as KEY=VALUE, sorted so that runs are reproducible.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Env returns the standard environment of a script: PGFM_CLUSTER,
// PGFM_EVENT and the placeholders' values as PGFM_NEW_PRIMARY,
// PGFM_FAILED_PRIMARY, PGFM_NODE, PGFM_TYPE and PGFM_OWNER (unset values
// left out). Callers may add their own variables to the map.
func Env(cluster, event string, vars Placeholders) map[string]string {
	env := map[string]string{}
	for k, v := range map[string]string{
		"PGFM_CLUSTER": cluster, "PGFM_EVENT": event,
		"PGFM_NEW_PRIMARY": vars.NewPrimary, "PGFM_FAILED_PRIMARY": vars.FailedPrimary,
		"PGFM_NODE": vars.Node, "PGFM_TYPE": vars.Type, "PGFM_OWNER": vars.Owner,
	} {
		if v != "" {
			env[k] = v
		}
	}
	return env
}

// tail is an io.Writer that keeps the last max bytes written to it.
type tail struct {
	max     int
	buf     []byte
	dropped int64
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.dropped += int64(len(t.buf) + len(p) - t.max)
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.dropped += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) String() string { return string(t.buf) }
