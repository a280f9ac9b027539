package postgres

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// maxOutput bounds what Run keeps of a program's output: the tail is where
// PostgreSQL programs say what went wrong.
const maxOutput = 64 << 10

// Run runs cmd (from Command) and returns its combined output, at most the
// last 64 KiB. On failure the error names the program and carries its output.
func Run(cmd *exec.Cmd) (string, error) {
	var out tailBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	text := strings.TrimSpace(string(out.b))
	if err != nil {
		return text, fmt.Errorf("%s: %w: %s", filepath.Base(cmd.Path), err, text)
	}
	return text, nil
}

// tailBuffer keeps the last maxOutput bytes written to it. exec serialises
// writes when Stdout and Stderr are the same pointer, so it needs no lock.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - maxOutput; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}
