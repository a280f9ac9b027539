package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SyncStandbyNames reads synchronous_standby_names as the server applies it.
func SyncStandbyNames(ctx context.Context, connString string) (string, error) {
	var v string
	err := query(ctx, connString, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&v)
	})
	if err != nil {
		return "", fmt.Errorf("read synchronous_standby_names: %w", err)
	}
	return v, nil
}

// SetSyncStandbyNames sets synchronous_standby_names (ALTER SYSTEM, which
// a standby accepts too) and reloads the configuration. It returns once
// the session that asked sees the new value: the postmaster has reloaded
// and signalled every process, the WAL senders among them.
func (s Server) SetSyncStandbyNames(ctx context.Context, connString, value string) error {
	err := query(ctx, connString, func(conn *pgx.Conn) error {
		var now string
		if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&now); err != nil {
			return err
		}
		if now == value {
			return nil // a promotion in synchronous mode takes no reload it does not need
		}
		for _, q := range []string{
			"ALTER SYSTEM SET synchronous_standby_names = " + sqlLiteral(value),
			"SELECT pg_reload_conf()",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return err
			}
		}
		for {
			var now string
			if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&now); err != nil {
				return err
			}
			if now == value {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the server still applies %q: %w", now, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	if err != nil {
		return fmt.Errorf("set synchronous_standby_names to %q: %w", value, err)
	}
	return nil
}
