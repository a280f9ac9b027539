package postgres

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// pidFileServer is a Server on an empty data directory and a function
// that writes its postmaster.pid.
func pidFileServer(t *testing.T) (Server, func(content string)) {
	dir := t.TempDir()
	return Server{DataDir: dir}, func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, PostmasterPIDFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPostmasterPID(t *testing.T) {
	s, write := pidFileServer(t)
	if pid := s.PostmasterPID(); pid != 0 {
		t.Fatalf("no file: pid %d", pid)
	}
	write("garbage\n")
	if pid := s.PostmasterPID(); pid != 0 {
		t.Fatalf("garbage: pid %d", pid)
	}
	write(strconv.Itoa(os.Getpid()) + "\n/data\n1700000000\n5432\n")
	if pid := s.PostmasterPID(); pid != os.Getpid() {
		t.Fatalf("live pid: got %d, want %d", pid, os.Getpid())
	}
	// A process that has exited and been reaped: the file is stale.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	write(strconv.Itoa(cmd.Process.Pid) + "\n")
	if pid := s.PostmasterPID(); pid != 0 {
		t.Fatalf("stale pid %d: got %d", cmd.Process.Pid, pid)
	}
}

func TestPostmasterStarted(t *testing.T) {
	s, write := pidFileServer(t)
	if _, ok := s.PostmasterStarted(); ok {
		t.Fatal("no file: a start time")
	}
	self := strconv.Itoa(os.Getpid())
	write(self + "\n/data\n1700000000\n5432\n")
	if at, ok := s.PostmasterStarted(); !ok || !at.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("live postmaster: %s %v, want %s", at, ok, time.Unix(1700000000, 0))
	}
	for _, bad := range []string{self + "\n/data\n", self + "\n/data\nsoon\n", self + "\n/data\n-5\n"} {
		write(bad)
		if at, ok := s.PostmasterStarted(); ok {
			t.Fatalf("%q: start time %s", bad, at)
		}
	}
}

func TestWaitSecs(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", time.Minute: "60"} {
		if got := waitSecs(d); got != want {
			t.Errorf("waitSecs(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestSQLLiteral(t *testing.T) {
	if got, want := sqlLiteral(`it's a \ b`), `E'it''s a \\ b'`; got != want {
		t.Fatalf("sqlLiteral = %s, want %s", got, want)
	}
}
