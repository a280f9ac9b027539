package postgres

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// statusNotRunning is pg_ctl status's exit code when no server runs.
const statusNotRunning = 3

// ServerRunning reports whether a postmaster runs for dataDir, as pg_ctl
// status sees it (it checks postmaster.pid and that its process lives). Any
// answer but "running" or "not running", such as a missing data directory, is
// an error carrying pg_ctl's output.
func ServerRunning(ctx context.Context, binDir, owner, dataDir string) (bool, error) {
	cmd, err := Command(ctx, binDir, owner, "pg_ctl", "status", "-D", dataDir)
	if err != nil {
		return false, err
	}
	_, err = Run(cmd)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitCode() == statusNotRunning && ctx.Err() == nil:
		return false, nil
	default:
		return false, fmt.Errorf("postgres: server status of %s: %w", dataDir, err)
	}
}
