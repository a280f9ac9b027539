package bench

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// runT is the testing.TB one benchmark run hands the harness. It scopes
// the harness's cleanups to the run (each run's cluster is torn down when
// the run ends, not when the whole benchmark does) and turns the
// harness's Fatal into the end of this run only, recorded, so that the
// other runs still happen and the table still prints.
type runT struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	errs     []string
	logs     []string
	skip     string
}

// abortRun is the panic value of Fatal and Skip; run recovers it.
type abortRun struct{}

func newRunT(tb testing.TB) *runT { return &runT{TB: tb} }

func (r *runT) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runT) addErr(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, s)
}

func (r *runT) Error(args ...any)                 { r.addErr(fmt.Sprint(args...)) }
func (r *runT) Errorf(format string, args ...any) { r.addErr(fmt.Sprintf(format, args...)) }
func (r *runT) Fail()                             { r.addErr("Fail called") }
func (r *runT) Fatal(args ...any)                 { r.addErr(fmt.Sprint(args...)); panic(abortRun{}) }
func (r *runT) Fatalf(format string, args ...any) {
	r.addErr(fmt.Sprintf(format, args...))
	panic(abortRun{})
}
func (r *runT) FailNow() { r.addErr("FailNow called"); panic(abortRun{}) }

func (r *runT) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs) > 0
}

func (r *runT) Log(args ...any) { r.addLog(fmt.Sprint(args...)) }
func (r *runT) Logf(format string, args ...any) {
	r.addLog(fmt.Sprintf(format, args...))
}

func (r *runT) addLog(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, s)
}

func (r *runT) Skip(args ...any) { r.setSkip(fmt.Sprint(args...)) }
func (r *runT) Skipf(format string, args ...any) {
	r.setSkip(fmt.Sprintf(format, args...))
}
func (r *runT) SkipNow() { r.setSkip("SkipNow called") }

func (r *runT) setSkip(s string) {
	r.mu.Lock()
	r.skip = s
	r.mu.Unlock()
	panic(abortRun{})
}

func (r *runT) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skip != ""
}

// finish runs the cleanups, last registered first, each shielded from the
// others' Fatal.
func (r *runT) finish() {
	for {
		r.mu.Lock()
		if len(r.cleanups) == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[len(r.cleanups)-1]
		r.cleanups = r.cleanups[:len(r.cleanups)-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if v := recover(); v != nil {
					if _, ok := v.(abortRun); !ok {
						panic(v)
					}
				}
			}()
			f()
		}()
	}
}

// report is the run's harness errors and, when there are some, its logs.
func (r *runT) report() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return ""
	}
	var b strings.Builder
	for _, e := range r.errs {
		fmt.Fprintf(&b, "harness: %s\n", e)
	}
	for _, l := range r.logs {
		fmt.Fprintf(&b, "log: %s\n", l)
	}
	return b.String()
}
