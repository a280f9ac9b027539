package hook

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Deliveries go out in order; a full queue drops and counts, and the next
// delivery says how many were dropped; every notification is logged.
func TestQueueOrderAndOverflow(t *testing.T) {
	out := filepath.Join(t.TempDir(), "subjects")
	cmd := script(t, `printf '%s|%s\n' "$1" "$2" >> `+shellQuote(out))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	q := NewQueue(NewNotifier(NotifyConfig{Script: cmd, Timeout: 5 * time.Second}, NewRunner(log), log), 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, s := range []string{"first", "second", "third"} { // no worker yet: third overflows
		q.Post(ctx, Notification{Severity: Severe, Subject: s, Cluster: "main", Node: "192.0.2.11"})
	}
	if q.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", q.Dropped())
	}
	if !strings.Contains(logs.String(), `subject=third`) || !strings.Contains(logs.String(), "the queue is full") {
		t.Fatalf("the dropped notification is not in the log:\n%s", logs.String())
	}
	go q.Run(ctx)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(out); strings.Contains(string(b), "pgfm second|") {
			break
		}
	}
	b, _ := os.ReadFile(out)
	got := string(b)
	i, j := strings.Index(got, "pgfm first|"), strings.Index(got, "pgfm second|")
	if i < 0 || j < i {
		t.Fatalf("deliveries out of order or missing:\n%s", got)
	}
	if !strings.Contains(got[i:j], "1 earlier notifications were not delivered") {
		t.Fatalf("the first delivery after the overflow does not say one was dropped:\n%s", got)
	}
}

// Post never waits for a delivery, even one whose script hangs.
func TestQueuePostDoesNotWait(t *testing.T) {
	hang := script(t, "sleep 60")
	log := slog.New(slog.DiscardHandler)
	q := NewQueue(NewNotifier(NotifyConfig{Script: hang, Timeout: time.Minute}, NewRunner(log), log), 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	posted := make(chan struct{})
	go func() {
		for range 10 { // more than the queue holds, while the first hangs
			q.Post(ctx, Notification{Severity: Severe, Subject: "failover step"})
		}
		close(posted)
	}()
	select {
	case <-posted:
	case <-time.After(10 * time.Second):
		t.Fatal("Post blocked behind a hanging notification script")
	}
	if q.Dropped() == 0 {
		t.Fatal("ten posts behind a hanging script into a queue of four dropped nothing")
	}
}
