package testenv

import (
	"os"
	"strings"
	"testing"
)

// logTailLines is how much of each server log a failed test prints.
const logTailLines = 50

// logTails prints the end of every node's server log, so a failure in CI
// shows what PostgreSQL said.
func (c *PGCluster) logTails(t testing.TB) {
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.LogFile)
		if err != nil {
			t.Logf("testenv: %s: no log: %v", n.Name, err)
			continue
		}
		t.Logf("testenv: last %d lines of %s (%s):\n%s", logTailLines, n.LogFile, n.Name, tail(string(b), logTailLines))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
