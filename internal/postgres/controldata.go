package postgres

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/pgfm/pgfm/internal/cluster"
)

// ControlData is what pg_controldata says of a data directory.
type ControlData struct {
	// State is "Database cluster state": "shut down" after a clean stop
	// of a primary, "shut down in recovery" of a standby.
	State string
	// Checkpoint is "Latest checkpoint location": after a clean stop, the
	// shutdown checkpoint, the last record in the WAL.
	Checkpoint cluster.LSN
	// Timeline is "Latest checkpoint's TimeLineID".
	Timeline uint32
	// WalLogHints and Checksums: "wal_log_hints setting" on, "Data page
	// checksum version" not 0; pg_rewind needs one of them.
	WalLogHints, Checksums bool
}

// WasPrimary: the data directory was last a primary's (running, crashed
// or stopped), not a standby's.
func (c ControlData) WasPrimary() bool {
	return c.State == "shut down" || c.State == "in production" || c.State == "in crash recovery" || c.State == "shutting down"
}

// CleanlyStopped: the server was shut down cleanly as a primary, so its
// WAL ends at the shutdown checkpoint.
func (c ControlData) CleanlyStopped() bool { return c.State == "shut down" }

// ControlData runs pg_controldata on the data directory.
func (s Server) ControlData(ctx context.Context) (ControlData, error) {
	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	cmd, err := Command(cctx, s.BinDir, s.Owner, "pg_controldata", "-D", s.DataDir)
	if err != nil {
		return ControlData{}, err
	}
	cmd.Env = append(cmd.Environ(), "LC_ALL=C") // its labels are translated otherwise
	out, err := Run(cmd)
	if err != nil {
		return ControlData{}, fmt.Errorf("postgres: pg_controldata: %w", err)
	}
	return ParseControlData(out)
}

// ParseControlData reads pg_controldata's output (in the C locale).
func ParseControlData(out string) (ControlData, error) {
	var c ControlData
	var haveState, haveCheckpoint bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		label, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(label) {
		case "Database cluster state":
			c.State, haveState = value, true
		case "Latest checkpoint location":
			l, err := cluster.ParseLSN(value)
			if err != nil {
				return c, fmt.Errorf("postgres: pg_controldata: latest checkpoint location %q: %w", value, err)
			}
			c.Checkpoint, haveCheckpoint = l, true
		case "wal_log_hints setting":
			c.WalLogHints = value == "on"
		case "Data page checksum version":
			c.Checksums = value != "0" && value != ""
		case "Latest checkpoint's TimeLineID":
			var tl uint32
			if _, err := fmt.Sscan(value, &tl); err == nil {
				c.Timeline = tl
			}
		}
	}
	if !haveState || !haveCheckpoint {
		return c, fmt.Errorf("postgres: pg_controldata printed no cluster state or checkpoint location")
	}
	return c, nil
}
