package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
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
	if _, err := conn.Exec(ctx, "LISTEN "+watchChannel); err != nil {
		return watchEnd(ctx, err)
	}
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
