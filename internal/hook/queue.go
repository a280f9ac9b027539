package hook

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// Queue delivers notifications through a Notifier one at a time, in the
// order they were posted, from a bounded buffer: whoever posts (a failover
// step, say) never waits for a script or a mail server. A notification is
// logged when it is posted; when the buffer is full, its delivery is
// dropped and counted, and the next delivered one says how many were.
type Queue struct {
	n       *Notifier
	ch      chan Notification
	dropped atomic.Uint64 // dropped since the last delivery that reported them
	total   atomic.Uint64 // dropped since the start
}

// NewQueue returns a queue of size notifications for n; Run delivers them.
func NewQueue(n *Notifier, size int) *Queue {
	return &Queue{n: n, ch: make(chan Notification, max(size, 1))}
}

// Post logs note and queues its delivery; it never blocks.
func (q *Queue) Post(ctx context.Context, note Notification) {
	if note.At.IsZero() {
		note.At = time.Now()
	}
	q.n.record(ctx, note)
	select {
	case q.ch <- note:
	default:
		q.dropped.Add(1)
		q.total.Add(1)
		q.n.log.Warn("notification not delivered: the queue is full (a notification script or the mail server is slow)",
			"subject", note.Subject, "dropped", q.total.Load(), "queue", cap(q.ch))
	}
}

// Dropped is how many deliveries were dropped since the queue started.
func (q *Queue) Dropped() uint64 { return q.total.Load() }

// Run delivers queued notifications until ctx ends.
func (q *Queue) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			if n := len(q.ch); n > 0 {
				q.n.log.Info("notifications not delivered: the agent stops", "pending", n)
			}
			return
		case note := <-q.ch:
			if d := q.dropped.Swap(0); d > 0 {
				note.Body += "\n\n(" + strconv.FormatUint(d, 10) + " earlier notifications were not delivered: the queue was full; see the agent's log.)"
			}
			q.n.deliver(ctx, note)
		}
	}
}
