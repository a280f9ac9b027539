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
wal_log_hints setting:                on
Data page checksum version:           0
`
	c, err := ParseControlData(out)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CleanlyStopped() || !c.WasPrimary() || c.Checkpoint.String() != "0/3000060" || c.Timeline != 2 || c.CanRewind() != nil || c.Checksums {
		t.Fatalf("got %+v", c)
	}
	inRecovery, err := ParseControlData(strings.Replace(out, "shut down", "shut down in recovery", 1))
	if err != nil || inRecovery.CleanlyStopped() || inRecovery.WasPrimary() {
		t.Fatalf("a standby's clean stop is no primary's: %+v %v", inRecovery, err)
	}
	if _, err := ParseControlData("Database cluster state: in production\n"); err == nil {
		t.Fatal("no checkpoint location: want an error")
	}
	if _, err := ParseControlData("Database cluster state: shut down\nLatest checkpoint location: zz\n"); err == nil {
		t.Fatal("bad location: want an error")
	}
}

func TestParseRewind(t *testing.T) {
	r, err := ParseRewind("pg_rewind: servers diverged at WAL location 0/3000148 on timeline 1\npg_rewind: rewinding from last common checkpoint at 0/3000060 on timeline 1\npg_rewind: Done!")
	if err != nil || !r.Needed || r.ForkLSN.String() != "0/3000148" || r.ForkTimeline != 1 {
		t.Fatalf("got %+v, %v", r, err)
	}
	r, err = ParseRewind("pg_rewind: servers diverged at WAL location 0/3000148 on timeline 1\npg_rewind: no rewind required")
	if err != nil || r.Needed {
		t.Fatalf("no rewind required: got %+v, %v", r, err)
	}
	if _, err := ParseRewind("pg_rewind: something else"); err == nil {
		t.Fatal("unknown output: want an error")
	}
}

func TestParseWaldump(t *testing.T) {
	const out = `rmgr: Heap        len (rec/tot):     59/    59, tx:        740, lsn: 0/03000148, prev 0/03000110, desc: INSERT off 3 flags 0x00
rmgr: Transaction len (rec/tot):     34/    34, tx:        740, lsn: 0/03000188, prev 0/03000148, desc: COMMIT 2026-12-02 17:00:00.000000 UTC
rmgr: Heap        len (rec/tot):     59/    59, tx:        741, lsn: 0/030001B0, prev 0/03000188, desc: INSERT off 4 flags 0x00
rmgr: Transaction len (rec/tot):     34/    34, tx:        741, lsn: 0/030001F0, prev 0/030001B0, desc: COMMIT 2026-12-02 17:00:00.010000 UTC
pg_waldump: error: error in WAL record at 0/30001F0: invalid record length at 0/3000218: wanted 24, got 0`
	d := ParseWaldump(out, 0x3000148)
	if d.Records != 4 || d.Commits != 2 || d.To.String() != "0/30001F0" || d.From.String() != "0/3000148" {
		t.Fatalf("got %+v", d)
	}
}
