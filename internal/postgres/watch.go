package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfm/pgfm/internal/cluster"
)

// ErrConnectionLost says a watched connection broke: the server stopped,
// crashed, or its postmaster died (its backends then exit at once).
var ErrConnectionLost = errors.New("connection to the server lost")

// watchChannel is the channel WatchConnection listens on; nothing needs to
// notify it.
const watchChannel = "pgfm_watch"

// WatchConnection opens a dedicated connection and blocks until it breaks,
// returning an error wrapping ErrConnectionLost, or until ctx ends,
// returning ctx's error. It returns at once with an error when it cannot
// connect. It idles in LISTEN, so the server's backend waits on the client
// socket and exits as soon as the postmaster dies; the agent uses it to react
// to a postmaster's death at once instead of at its next probe. A host that
// vanishes from the network is seen only by TCP keepalives: the probe
// remains the detector for that.
func WatchConnection(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("postgres: watch connection: %w", err)
	}
	defer closeConn(ctx, conn)
	// A standby refuses LISTEN ("cannot execute LISTEN during recovery"),
	// but its backend waits on the socket all the same: keep the
	// connection, idle, and wait for it to break.
	_, _ = conn.Exec(ctx, "LISTEN "+watchChannel)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return watchEnd(ctx, err)
		}
		// Someone notified our channel: keep watching.
	}
}

// watchEnd says why the watch ended: ctx, or the connection.
func watchEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("postgres: watch connection: %w: %v", ErrConnectionLost, err)
}

// WaitReplayed waits, on one connection polled every poll, until the
// standby at connString has replayed WAL past lsn: a replay position past
// a record's start means the record was replayed. It returns the replay
// position reached, or an error when the connection fails or ctx ends.
func WaitReplayed(ctx context.Context, connString string, lsn cluster.LSN, poll time.Duration) (cluster.LSN, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return 0, fmt.Errorf("postgres: wait for replay: %w", err)
	}
	defer closeConn(ctx, conn)
	for {
		var s string
		if err := conn.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn()::text, '0/0')").Scan(&s); err != nil {
			return 0, fmt.Errorf("postgres: wait for replay: %w", err)
		}
		got, err := cluster.ParseLSN(s)
		if err != nil {
			return 0, fmt.Errorf("postgres: wait for replay: %w", err)
		}
		if got > lsn {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(poll):
		}
	}
}
