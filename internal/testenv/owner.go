package testenv

import (
	"os"
	"os/user"
	"strconv"
	"testing"
)

// dbOwner runs PostgreSQL when the tests run as root.
const dbOwner = "postgres"

// owner is the OS user the harness's PostgreSQL servers run as: postgres
// under root, else ourselves (postgres.Command ignores it then).
func owner(t testing.TB) string {
	t.Helper()
	if os.Geteuid() == 0 {
		return dbOwner
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("testenv: current user: %v", err)
	}
	return u.Username
}

// chownToOwner hands a directory the harness made to the PostgreSQL user,
// which must write into it. Nothing to do when we are not root.
func chownToOwner(t testing.TB, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup(dbOwner)
	if err != nil {
		t.Fatalf("testenv: os user %s: %v", dbOwner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatalf("testenv: chown %s: %v", path, err)
	}
}
