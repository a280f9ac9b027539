package testenv

import (
	"syscall"
	"testing"
)

// Signal sends sig to the agent's whole process group (SIGSTOP freezes
// it, SIGCONT thaws it).
func (n *Node) Signal(sig syscall.Signal) { n.signal(sig) }

// Signal sends sig to the postmaster and every process it started, as a
// frozen or thawed host would do to them all.
func (n *PGNode) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	pid := n.postmasterPID()
	if pid == 0 {
		t.Fatalf("testenv: %s has no postmaster to signal", n)
	}
	for _, p := range append([]int{pid}, children(pid)...) {
		_ = syscall.Kill(p, sig)
	}
}

// TryQueryRow is QueryRow that returns the error instead of failing the
// test, for polling.
func (n *PGNode) TryQueryRow(sql string, dest ...any) error {
	return n.queryRow(sql, nil, dest...)
}
