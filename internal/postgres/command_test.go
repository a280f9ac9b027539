package postgres_test

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/postgres"
	"github.com/pgfm/pgfm/internal/testenv"
)

func TestCommandRunsAsOwner(t *testing.T) {
	t.Parallel()
	c := testenv.NewPGCluster(t, testenv.PGOptions{})
	p := c.Primary()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cmd, err := postgres.Command(ctx, c.BinDir, p.Owner, "pg_ctl", "--version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := postgres.Run(cmd)
	if err != nil || !strings.Contains(out, "PostgreSQL") {
		t.Fatalf("pg_ctl --version = %q, %v", out, err)
	}
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if got := cmd.SysProcAttr.Credential.Uid; got != uint32(uid) {
		t.Fatalf("pg_ctl ran as uid %d, want postgres (%d)", got, uid)
	}
	// initdb ran through Command: its files belong to postgres.
	st, err := os.Stat(filepath.Join(p.DataDir, "PG_VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; owner != uint32(uid) {
		t.Fatalf("PG_VERSION owned by uid %d, want postgres (%d)", owner, uid)
	}
}

func TestCommandRefusesBadOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the owner is only used when running as root")
	}
	for _, owner := range []string{"pgfm-no-such-user", "root", ""} {
		_, err := postgres.Command(context.Background(), "/bin", owner, "true")
		if err == nil || !strings.Contains(err.Error(), "db.service.owner") {
			t.Fatalf("owner %q: error %v, want one saying to set db.service.owner", owner, err)
		}
	}
}

// Cancelling the context kills the program's whole process group, so a hung
// pg_ctl cannot leave anything behind.
func TestCommandCancelKillsGroup(t *testing.T) {
	t.Parallel()
	owner := "postgres"
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(owner); err != nil {
			t.Skip("no postgres user")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	pidFile := filepath.Join(testenv.TempDir(t), "pid")
	if err := os.WriteFile(pidFile, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(pidFile, 0o666) // umask may have narrowed it; postgres must write it
	cmd, err := postgres.Command(ctx, "/bin", owner, "sh", "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := postgres.Run(cmd); err == nil {
		t.Fatal("Run succeeded despite the cancelled context")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Run returned after %v", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	sleeper, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	testenv.WaitFor(t, 10*time.Second, "background sleep killed with its group", func() (bool, error) {
		return !running(sleeper), nil
	})
}

// running reports whether pid lives and is not a zombie waiting to be reaped.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	return len(f) > 0 && f[0] != "Z"
}
