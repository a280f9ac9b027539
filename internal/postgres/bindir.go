package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BinDirEnv names the environment variable that points at the PostgreSQL
// server binaries when db.bin is not set.
const BinDirEnv = "PGFM_PG_BIN"

// pgConfigTimeout bounds `pg_config --bindir`, which only prints a path.
const pgConfigTimeout = 10 * time.Second

// BinDir resolves the PostgreSQL server binary directory: configured when set,
// else $PGFM_PG_BIN, else what `pg_config --bindir` says. The directory must
// hold pg_ctl.
func BinDir(configured string) (string, error) {
	if configured != "" {
		if err := hasPgCtl(configured); err != nil {
			return "", fmt.Errorf("postgres: db.bin: %w: set db.bin to the directory holding pg_ctl", err)
		}
		return configured, nil
	}
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if err := hasPgCtl(dir); err != nil {
			return "", fmt.Errorf("postgres: %s: %w: set %s (or db.bin) to the directory holding pg_ctl", BinDirEnv, err, BinDirEnv)
		}
		return dir, nil
	}
	dir, err := pgConfigBinDir()
	if err != nil {
		return "", fmt.Errorf("postgres: no PostgreSQL binaries found: %w: set db.bin (or %s) to the directory holding pg_ctl", err, BinDirEnv)
	}
	if err := hasPgCtl(dir); err != nil {
		return "", fmt.Errorf("postgres: pg_config --bindir: %w: install the PostgreSQL server package or set db.bin", err)
	}
	return dir, nil
}

// pgConfigBinDir asks pg_config, found on PATH, where the binaries are.
func pgConfigBinDir() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgConfigTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("pg_config --bindir: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("pg_config --bindir printed nothing")
	}
	return dir, nil
}

// hasPgCtl checks dir holds an executable pg_ctl.
func hasPgCtl(dir string) error {
	p := filepath.Join(dir, "pg_ctl")
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("no pg_ctl in %s: %w", dir, err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable", p)
	}
	return nil
}
