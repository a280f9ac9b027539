package testenv

import (
	"testing"
	"time"
)

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 25 * time.Millisecond

// WaitFor polls cond until it reports true, failing the test with msg and
// cond's last error when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() (bool, error)) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("testenv: %s: %v", msg, err)
	}
}

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
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return &timeoutError{after: timeout, last: last}
		}
		time.Sleep(pollInterval)
	}
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}
