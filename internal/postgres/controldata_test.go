package postgres

import (
	"strings"
	"testing"
)

func TestParseControlData(t *testing.T) {
	const out = `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7301234567890123456
Database cluster state:               shut down
pg_control last modified:             Wed 02 Dec 2026 17:00:00 UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000060
Latest checkpoint's TimeLineID:       2
`
	c, err := ParseControlData(out)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CleanlyStopped() || c.Checkpoint.String() != "0/3000060" || c.Timeline != 2 {
		t.Fatalf("got %+v", c)
	}
	inRecovery, err := ParseControlData(strings.Replace(out, "shut down", "shut down in recovery", 1))
	if err != nil || inRecovery.CleanlyStopped() {
		t.Fatalf("a standby's clean stop is no primary's: %+v %v", inRecovery, err)
	}
	if _, err := ParseControlData("Database cluster state: in production\n"); err == nil {
		t.Fatal("no checkpoint location: want an error")
	}
	if _, err := ParseControlData("Database cluster state: shut down\nLatest checkpoint location: zz\n"); err == nil {
		t.Fatal("bad location: want an error")
	}
}
