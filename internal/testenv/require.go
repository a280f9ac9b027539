package testenv

import (
	"os"
	"os/user"
	"testing"

	"github.com/pgfm/pgfm/internal/postgres"
)

// RequireEnv, when set to 1 (CI sets it), turns a missing PostgreSQL into a
// test failure instead of a skip, so integration tests cannot silently vanish.
const RequireEnv = "PGFM_REQUIRE_INTEGRATION"

// RequirePostgres returns the PostgreSQL bin directory, or skips the test (fails
// it under PGFM_REQUIRE_INTEGRATION=1) when PostgreSQL cannot be run here.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	bin, err := postgres.BinDir("")
	if err != nil {
		unavailable(t, err.Error())
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(dbOwner); err != nil {
			unavailable(t, "running as root, PostgreSQL needs the os user "+dbOwner+": "+err.Error())
		}
	}
	return bin
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("testenv: PostgreSQL unavailable (%s=1): %s", RequireEnv, why)
	}
	t.Skipf("testenv: PostgreSQL unavailable, skipping (set %s or install PostgreSQL): %s", postgres.BinDirEnv, why)
}
