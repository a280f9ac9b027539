package postgres

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/cluster"
)

// probeQuery reads everything Observe reports in one round trip, on a primary
// or a standby alike. Functions that fail during recovery are only called when
// the server is not in recovery, decided once (the materialized CTE) so a
// promotion between two calls cannot make the query fail. A standby with no
// WAL receiver has no row in pg_stat_wal_receiver: the LEFT JOIN gives NULLs.
const probeQuery = `
WITH r AS MATERIALIZED (SELECT pg_is_in_recovery() AS rec),
     p AS MATERIALIZED (SELECT CASE WHEN NOT rec THEN pg_current_wal_lsn() END AS lsn FROM r)
SELECT r.rec,
       p.lsn::text,
       pg_walfile_name(p.lsn),
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       w.status,
       w.sender_host,
       w.conninfo,
       w.received_tli,
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT system_identifier::text FROM pg_control_system()),
       current_setting('server_version_num')::int
FROM r CROSS JOIN p LEFT JOIN pg_stat_wal_receiver w ON true`

// closeTimeout bounds sending the terminate message when the probe is done.
const closeTimeout = time.Second

// probeRow is the probe's result; pointers are the columns that may be NULL.
type probeRow struct {
	inRecovery                 bool
	currentLSN, walFile        *string
	receiveLSN, replayLSN      *string
	receiverStatus, senderHost *string
	receiverConninfo           *string
	receivedTLI, checkpointTLI *int32
	systemID                   *string
	version                    int32
}

// Observe connects, probes the server and disconnects. ctx bounds the whole
// probe; the connection string's connect_timeout bounds the connection. On
// failure it returns an observation with Up false and Error set, and the error.
func Observe(ctx context.Context, connString string) (cluster.DBObservation, error) {
	row, err := probe(ctx, connString)
	if err != nil {
		err = fmt.Errorf("observe: %w", err)
		return cluster.DBObservation{Error: err.Error()}, err
	}
	obs, err := row.observation()
	if err != nil {
		err = fmt.Errorf("observe: %w", err)
		return cluster.DBObservation{Error: err.Error()}, err
	}
	return obs, nil
}

// probe runs probeQuery on a fresh connection.
func probe(ctx context.Context, connString string) (probeRow, error) {
	var r probeRow
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return r, err
	}
	// The simple protocol runs the query in one round trip, with no
	// prepared statement to cache on a connection we close right away.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return r, err
	}
	defer func() {
		// Saying goodbye must not outlive the probe by much, even when
		// ctx is already done.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		conn.Close(cctx)
	}()
	err = conn.QueryRow(ctx, probeQuery).Scan(
		&r.inRecovery, &r.currentLSN, &r.walFile, &r.receiveLSN, &r.replayLSN,
		&r.receiverStatus, &r.senderHost, &r.receiverConninfo, &r.receivedTLI, &r.checkpointTLI,
		&r.systemID, &r.version)
	return r, err
}

// observation turns the raw row into our vocabulary.
func (r probeRow) observation() (cluster.DBObservation, error) {
	o := cluster.DBObservation{
		Up:          true,
		InRecovery:  r.inRecovery,
		WalReceiver: deref(r.receiverStatus),
		SenderHost:  deref(r.senderHost),
		SystemID:    deref(r.systemID),
		Version:     int(r.version),
	}
	// conninfo is NULL without pg_read_all_stats: the name stays unknown.
	if values, _, err := ParseConninfo(deref(r.receiverConninfo)); err == nil {
		o.ReceiverAppName = cmp.Or(values["application_name"], values["fallback_application_name"])
	}
	var err error
	if o.CurrentLSN, err = parseLSN(r.currentLSN); err != nil {
		return o, fmt.Errorf("current lsn: %w", err)
	}
	if o.ReceiveLSN, err = parseLSN(r.receiveLSN); err != nil {
		return o, fmt.Errorf("receive lsn: %w", err)
	}
	if o.ReplayLSN, err = parseLSN(r.replayLSN); err != nil {
		return o, fmt.Errorf("replay lsn: %w", err)
	}
	if o.Timeline, err = r.timeline(); err != nil {
		return o, err
	}
	return o, nil
}

// timeline is the server's current timeline. A primary's comes from the name
// of the WAL file it writes, which changes at promotion, unlike the last
// checkpoint's. A standby's is the one its WAL receiver streams, else that of
// its last checkpoint (restart point).
func (r probeRow) timeline() (uint32, error) {
	if !r.inRecovery && r.walFile != nil {
		if len(*r.walFile) < 8 {
			return 0, fmt.Errorf("timeline: wal file name %q too short", *r.walFile)
		}
		tli, err := strconv.ParseUint((*r.walFile)[:8], 16, 32)
		if err != nil {
			return 0, fmt.Errorf("timeline: wal file name %q: %w", *r.walFile, err)
		}
		return uint32(tli), nil
	}
	if r.receivedTLI != nil && *r.receivedTLI > 0 {
		return uint32(*r.receivedTLI), nil
	}
	if r.checkpointTLI != nil && *r.checkpointTLI > 0 {
		return uint32(*r.checkpointTLI), nil
	}
	return 0, nil
}

func parseLSN(s *string) (cluster.LSN, error) {
	if s == nil {
		return 0, nil
	}
	return cluster.ParseLSN(*s)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
