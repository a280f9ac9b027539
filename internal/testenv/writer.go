package testenv

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Write is one acknowledged insert: which server took it and when the
// acknowledgement arrived.
type Write struct {
	ID     int
	Server string // inet_server_addr() of the server that committed it
	At     time.Time
	// Latency is from sending the insert to its acknowledgement (the
	// commit latency the client sees).
	Latency time.Duration
}

// Writer is a client that inserts a row every Interval through a
// connection string listing every database host with
// target_session_attrs=read-write, reconnecting after errors, as an
// application would during a failover.
type Writer struct {
	Interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	acked  []Write
	errors int
}

// StartWriter creates table pgfm_writes on the primary and starts writing.
func StartWriter(t testing.TB, primary *PGNode, hosts []string, port int) *Writer {
	t.Helper()
	primary.Exec(t, "CREATE TABLE IF NOT EXISTS pgfm_writes(id int PRIMARY KEY, at timestamptz DEFAULT now())")
	ports := make([]string, len(hosts))
	for i := range ports {
		ports[i] = fmt.Sprint(port)
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=1 sslmode=disable",
		strings.Join(hosts, ","), strings.Join(ports, ",")))
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{Interval: 10 * time.Millisecond, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx, cfg, "host(inet_server_addr())")
	t.Cleanup(w.Stop)
	return w
}

// run inserts a row every Interval until ctx ends, connecting with cfg and
// naming the server that took each write with the SQL expression server.
func (w *Writer) run(ctx context.Context, cfg *pgx.ConnConfig, server string) {
	defer close(w.done)
	insert := "INSERT INTO pgfm_writes(id) VALUES ($1) RETURNING " + server
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for id := 1; ; id++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := pgx.ConnectConfig(cctx, cfg)
			cancel()
			if err != nil {
				w.fail()
				continue
			}
			conn = c
		}
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		var srv string
		sent := time.Now()
		err := conn.QueryRow(qctx, insert, id).Scan(&srv)
		cancel()
		if err != nil {
			w.fail()
			conn.Close(context.Background())
			conn = nil
			continue
		}
		w.mu.Lock()
		now := time.Now()
		w.acked = append(w.acked, Write{ID: id, Server: srv, At: now, Latency: now.Sub(sent)})
		w.mu.Unlock()
	}
}

func (w *Writer) fail() {
	w.mu.Lock()
	w.errors++
	w.mu.Unlock()
}

// Stop ends the writer; safe to call twice.
func (w *Writer) Stop() {
	w.cancel()
	<-w.done
}

// Acked returns the acknowledged writes so far.
func (w *Writer) Acked() []Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Write(nil), w.acked...)
}

// WaitAcked waits until a write is acknowledged by server.
func (w *Writer) WaitAcked(t testing.TB, server string, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, "a write acknowledged by "+server, func() (bool, error) {
		for _, a := range w.Acked() {
			if net.ParseIP(a.Server).Equal(net.ParseIP(server)) {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d writes acknowledged, none by %s", len(w.Acked()), server)
	})
}

// History summarises a run: the longest gap between acknowledged writes,
// and the acknowledgements by oldServer that came after newServer's first
// (split-brain writes: must be none).
func History(acked []Write, oldServer, newServer string) (maxGap time.Duration, lateOld []Write) {
	var firstNew time.Time
	for i, a := range acked {
		if i > 0 {
			maxGap = max(maxGap, a.At.Sub(acked[i-1].At))
		}
		if firstNew.IsZero() && a.Server == newServer {
			firstNew = a.At
		}
	}
	if firstNew.IsZero() {
		return maxGap, nil
	}
	for _, a := range acked {
		if a.Server == oldServer && a.At.After(firstNew) {
			lateOld = append(lateOld, a)
		}
	}
	return maxGap, lateOld
}

// LostWrites are the acknowledged writes that the server does not have.
func LostWrites(pg *PGNode, acked []Write) ([]Write, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.ConnString("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT id FROM pgfm_writes")
	if err != nil {
		return nil, err
	}
	have := map[int]bool{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var lost []Write
	for _, a := range acked {
		if !have[a.ID] {
			lost = append(lost, a)
		}
	}
	return lost, nil
}

// Errors is how many writes failed or timed out so far.
func (w *Writer) Errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errors
}
