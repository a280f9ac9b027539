package testenv

import (
	"errors"
	"testing"
	"time"
)

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 25 * time.Millisecond

// WaitFor polls cond until it reports true, failing the test with msg and
// cond's last error when timeout passes first, or at once when cond
// returns an error made by GiveUp.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() (bool, error)) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("testenv: %s: %v", msg, err)
	}
}

// GiveUp marks a condition's error as final: waiting longer cannot help
// (an agent exited, a failover ran before the test began), so WaitFor
// fails now with err rather than after its timeout.
func GiveUp(err error) error { return &giveUpError{err} }

type giveUpError struct{ err error }

func (e *giveUpError) Error() string { return e.err.Error() }
func (e *giveUpError) Unwrap() error { return e.err }

// timeoutError says a wait ran out, with the condition's last error.
type timeoutError struct {
	after time.Duration
	last  error
}

func (e *timeoutError) Error() string {
	return "timed out after " + e.after.String() + ", last error: " + errString(e.last)
}

// poll is WaitFor without a test, for cleanup paths that must not Fatal.
func poll(timeout time.Duration, cond func() (bool, error)) error {
	start := time.Now()
	deadline := start.Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		if g := (*giveUpError)(nil); errors.As(err, &g) {
			return &gaveUpError{after: time.Since(start).Round(time.Millisecond), err: g.err}
		}
		last = err
		if time.Now().After(deadline) {
			return &timeoutError{after: timeout, last: last}
		}
		time.Sleep(pollInterval)
	}
}

// gaveUpError says a wait stopped early, and why.
type gaveUpError struct {
	after time.Duration
	err   error
}

func (e *gaveUpError) Error() string {
	return "gave up after " + e.after.String() + ": " + e.err.Error()
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}
