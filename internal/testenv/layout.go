package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// MoveConfigOut gives the stopped server Debian's layout: postgresql.conf,
// pg_hba.conf and pg_ident.conf move to a directory of their own, which
// names the data directory, and is returned (for db.config.dir). The data
// directory can then be emptied as on a node that was never initialised.
func (n *PGNode) MoveConfigOut(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(TempDir(t), "conf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chownToOwner(t, dir)
	for _, f := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		if err := os.Rename(filepath.Join(n.DataDir, f), filepath.Join(dir, f)); err != nil {
			t.Fatalf("testenv: move %s out of the data directory: %v", f, err)
		}
	}
	conf, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conf.Close()
	if _, err := fmt.Fprintf(conf, "\ndata_directory = '%s'\nhba_file = '%s/pg_hba.conf'\nident_file = '%s/pg_ident.conf'\n", n.DataDir, dir, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
