package testenv

import (
	"fmt"
	"os"
	"strings"
)

// baseConf is what every harness server runs with: replication on, with
// room for a few standbys and pg_rewind (wal_log_hints), and no durability
// (fsync off) since the data dies with the test. Short retry and status
// intervals keep replication tests quick.
var baseConf = []string{
	"wal_level = replica",
	"max_wal_senders = 10",
	"max_replication_slots = 10",
	"wal_keep_size = '128MB'",
	"hot_standby = on",
	"wal_log_hints = on",
	"fsync = off",
	"max_connections = 40",
	"shared_buffers = '16MB'",
	"wal_receiver_status_interval = '1s'",
	"wal_retrieve_retry_interval = '500ms'",
	"logging_collector = off",
	"log_line_prefix = '%m [%p] %q%a '",
}

// nodeConf is what differs between nodes: where each listens.
func nodeConf(n *PGNode) []string {
	return []string{
		"listen_addresses = " + confQuote(n.Host),
		fmt.Sprintf("port = %d", n.Port),
		"unix_socket_directories = " + confQuote(n.SocketDir),
	}
}

// hbaConf trusts loopback only, for normal and replication connections.
const hbaConf = `# pgfm test harness: trust on loopback only
local all         all                trust
local replication all                trust
host  all         all   127.0.0.0/8  trust
host  all         all   ::1/128      trust
host  replication all   127.0.0.0/8  trust
host  replication all   ::1/128      trust
`

// confQuote makes a postgresql.conf string literal.
func confQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// appendConf adds lines to a configuration file; later settings win, so this
// overrides what initdb or pg_basebackup wrote. Appending to the existing
// file keeps its owner.
func appendConf(path string, lines []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append conf: %w", err)
	}
	_, err = f.WriteString("\n# pgfm test harness\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append conf %s: %w", path, err)
	}
	return nil
}

// replaceFile rewrites an existing file in place, keeping its owner and mode.
func replaceFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
