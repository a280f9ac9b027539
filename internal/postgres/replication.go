package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/cluster"
)

// ErrNoStatsPrivilege: the connected user sees pg_stat_replication's rows
// but not their details, which only superusers and members of
// pg_read_all_stats may read.
var ErrNoStatsPrivilege = errors.New("the user may not read the details of pg_stat_replication")

// sendersQuery reads a primary's WAL position and its WAL senders in one
// round trip, so lags are measured against one position. The LEFT JOIN
// yields one row of NULL senders when there are none; a slot is the
// sender's when the slot's active_pid is the sender's pid.
const sendersQuery = `
WITH r AS MATERIALIZED (SELECT pg_is_in_recovery() AS rec),
     p AS MATERIALIZED (SELECT CASE WHEN NOT rec THEN pg_current_wal_lsn() END AS lsn FROM r)
SELECT r.rec,
       p.lsn::text,
       s.pid,
       host(s.client_addr),
       s.application_name,
       s.state,
       s.sync_state,
       s.sent_lsn::text,
       s.write_lsn::text,
       s.flush_lsn::text,
       s.replay_lsn::text,
       extract(epoch FROM s.replay_lag)::float8,
       sl.slot_name::text
FROM r CROSS JOIN p
LEFT JOIN pg_stat_replication s ON true
LEFT JOIN pg_replication_slots sl ON sl.active_pid = s.pid
ORDER BY s.pid`

// Sender is one WAL sender of a primary (pg_stat_replication): a standby,
// or another client such as pg_basebackup or pg_receivewal.
type Sender struct {
	PID int
	// ClientAddr is the client's IP address; "" over a unix socket.
	ClientAddr      string
	ApplicationName string
	State           string // streaming, catchup, startup, backup, stopping
	SyncState       string // async, potential, sync, quorum
	SentLSN         cluster.LSN
	WriteLSN        cluster.LSN
	FlushLSN        cluster.LSN
	ReplayLSN       cluster.LSN
	// ReplayLag is pg_stat_replication.replay_lag; nil when NULL (caught
	// up and idle for a while, or not measured yet).
	ReplayLag *time.Duration
	// Slot is the replication slot the sender streams through; "" for none.
	Slot string
}

// Senders is a server's WAL position and its WAL senders.
type Senders struct {
	InRecovery bool
	// CurrentLSN is pg_current_wal_lsn(); zero when in recovery.
	CurrentLSN cluster.LSN
	Senders    []Sender
}

// Replication connects, reads the server's WAL senders and disconnects.
// ctx bounds the whole query; the connection string's connect_timeout
// bounds the connection. The error wraps ErrNoStatsPrivilege when the
// user may not see the senders' details.
func Replication(ctx context.Context, connString string) (Senders, error) {
	var out Senders
	err := query(ctx, connString, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, sendersQuery)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r senderRow
			if err := rows.Scan(&out.InRecovery, &r.currentLSN, &r.pid, &r.clientAddr, &r.appName, &r.state, &r.syncState,
				&r.sent, &r.write, &r.flush, &r.replay, &r.replayLag, &r.slot); err != nil {
				return err
			}
			if out.CurrentLSN, err = parseLSN(r.currentLSN); err != nil {
				return fmt.Errorf("current lsn: %w", err)
			}
			if r.pid == nil {
				continue // no sender: the LEFT JOIN's row of NULLs
			}
			s, err := r.sender()
			if err != nil {
				return err
			}
			out.Senders = append(out.Senders, s)
		}
		return rows.Err()
	})
	if err != nil {
		return Senders{}, fmt.Errorf("replication: %w", err)
	}
	return out, nil
}

// senderRow is one row of sendersQuery; pointers are the columns that may
// be NULL.
type senderRow struct {
	currentLSN                 *string
	pid                        *int32
	clientAddr, appName        *string
	state, syncState           *string
	sent, write, flush, replay *string
	replayLag                  *float64
	slot                       *string
}

func (r senderRow) sender() (Sender, error) {
	if r.state == nil {
		// Without the privilege every column but the pid (and the
		// application name) is NULL; a state is always set otherwise.
		return Sender{}, ErrNoStatsPrivilege
	}
	s := Sender{
		PID: int(*r.pid), ClientAddr: deref(r.clientAddr), ApplicationName: deref(r.appName),
		State: *r.state, SyncState: deref(r.syncState), Slot: deref(r.slot),
	}
	for _, f := range []struct {
		name string
		in   *string
		out  *cluster.LSN
	}{{"sent", r.sent, &s.SentLSN}, {"write", r.write, &s.WriteLSN}, {"flush", r.flush, &s.FlushLSN}, {"replay", r.replay, &s.ReplayLSN}} {
		v, err := parseLSN(f.in)
		if err != nil {
			return s, fmt.Errorf("sender %d: %s lsn: %w", s.PID, f.name, err)
		}
		*f.out = v
	}
	// A lag that is not a number or too large for a Duration stays
	// unknown: converted, it came out as any value, negative ones too.
	if r.replayLag != nil && math.Abs(*r.replayLag) < math.MaxInt64/float64(time.Second) {
		d := time.Duration(*r.replayLag * float64(time.Second))
		s.ReplayLag = &d
	}
	return s, nil
}

// receiverQuery reads what a standby's WAL receiver streams from; the LEFT
// JOIN gives NULLs when no receiver runs.
const receiverQuery = `
SELECT pg_is_in_recovery(),
       pg_last_wal_replay_lsn()::text,
       w.status,
       w.sender_host,
       w.slot_name,
       w.conninfo
FROM (SELECT 1) x LEFT JOIN pg_stat_wal_receiver w ON true`

// Receiver is a standby's WAL receiver (pg_stat_wal_receiver), as the
// standby itself reports it.
type Receiver struct {
	InRecovery bool
	ReplayLSN  cluster.LSN
	// Status is "streaming", "waiting", ...; "" when no receiver runs.
	Status     string
	SenderHost string
	Slot       string
	// ApplicationName is the name the receiver gives the primary (its
	// conninfo's application_name, else fallback_application_name): the
	// sender's application_name on the primary. "" when unknown.
	ApplicationName string
}

// WalReceiver connects to a standby, reads its WAL receiver and disconnects.
func WalReceiver(ctx context.Context, connString string) (Receiver, error) {
	var out Receiver
	err := query(ctx, connString, func(conn *pgx.Conn) error {
		var replay, status, sender, slot, conninfo *string
		if err := conn.QueryRow(ctx, receiverQuery).Scan(&out.InRecovery, &replay, &status, &sender, &slot, &conninfo); err != nil {
			return err
		}
		var err error
		if out.ReplayLSN, err = parseLSN(replay); err != nil {
			return fmt.Errorf("replay lsn: %w", err)
		}
		out.Status, out.SenderHost, out.Slot = deref(status), deref(sender), deref(slot)
		// conninfo is NULL without pg_read_all_stats: the name stays
		// unknown, which only weakens matching.
		if values, _, err := ParseConninfo(deref(conninfo)); err == nil {
			out.ApplicationName = values["application_name"]
			if out.ApplicationName == "" {
				out.ApplicationName = values["fallback_application_name"]
			}
		}
		return nil
	})
	if err != nil {
		return Receiver{}, fmt.Errorf("wal receiver: %w", err)
	}
	return out, nil
}

// query runs fn on a fresh connection in the simple protocol (one round
// trip, no prepared statement on a connection closed right away).
func query(ctx context.Context, connString string, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
	return fn(conn)
}

// Standby is a standby as Match sees it: its node address and, when its
// database answered, its WAL receiver.
type Standby struct {
	Address  string
	Receiver *Receiver
}

// Match pairs standbys with the senders streaming to them, each sender
// with one standby at most. It returns, for each standby, the index of its
// sender in senders, or -1. In order of trust:
//   - the slot the standby's receiver streams through;
//   - the sender's client address, when it is the standby's (if several
//     senders come from it, the one with the receiver's application name);
//   - the application name the standby's receiver reports (else the
//     standby's address as application name), when exactly one sender
//     from no other standby's address has it: behind NAT or on one host
//     the client address tells nothing.
func Match(senders []Sender, standbys []Standby) []int {
	out := make([]int, len(standbys))
	used := make([]bool, len(senders))
	for i := range out {
		out[i] = -1
	}
	appName := func(sb Standby) string {
		if sb.Receiver != nil && sb.Receiver.ApplicationName != "" {
			return sb.Receiver.ApplicationName
		}
		return sb.Address
	}
	// take gives standby i the one unused sender ok accepts; none when
	// several are: a guess could show one standby's lag as another's.
	take := func(i int, ok func(Sender) bool) {
		if out[i] >= 0 {
			return
		}
		found := -1
		for j, s := range senders {
			if used[j] || !ok(s) {
				continue
			}
			if found >= 0 {
				return
			}
			found = j
		}
		if found >= 0 {
			out[i], used[found] = found, true
		}
	}
	for i, sb := range standbys {
		if sb.Receiver != nil && sb.Receiver.Slot != "" {
			take(i, func(s Sender) bool { return s.Slot == sb.Receiver.Slot })
		}
	}
	for i, sb := range standbys {
		take(i, func(s Sender) bool { return sameIP(s.ClientAddr, sb.Address) && s.ApplicationName == appName(sb) })
	}
	for i, sb := range standbys {
		take(i, func(s Sender) bool { return sameIP(s.ClientAddr, sb.Address) })
	}
	nodeAddr := func(addr string) bool {
		for _, sb := range standbys {
			if sameIP(addr, sb.Address) {
				return true
			}
		}
		return false
	}
	for i, sb := range standbys {
		name := appName(sb)
		shared := false
		for k, other := range standbys {
			shared = shared || (k != i && appName(other) == name)
		}
		if shared {
			continue // two standbys with one name: the name tells nothing
		}
		take(i, func(s Sender) bool { return s.ApplicationName == name && !nodeAddr(s.ClientAddr) })
	}
	return out
}

// sameIP compares two IP addresses as addresses (IPv4-mapped IPv6 equals
// its IPv4 address); an empty or unparsable one equals nothing.
func sameIP(a, b string) bool {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	return errX == nil && errY == nil && x.Unmap() == y.Unmap()
}
