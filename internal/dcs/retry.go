package dcs

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// droppedProposal reports whether err is etcd refusing a write because
// its leader was changing ("raft proposal dropped", "leader changed"): the
// write did not happen and can be sent again. etcd's client retries
// neither for a transaction, and the first sends them as an unknown error.
func droppedProposal(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, rpctypes.ErrLeaderChanged) || errors.Is(err, rpctypes.ErrGRPCLeaderChanged) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "raft proposal dropped") || strings.Contains(msg, "leader changed")
}

// retryDropped runs write, an idempotent write, again while etcd drops it
// for a leader change, until ctx ends (at most about 2 s of retries).
func retryDropped(ctx context.Context, write func() error) error {
	delay := 20 * time.Millisecond
	for try := 0; ; try++ {
		err := write()
		if !droppedProposal(err) || try == 8 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 400*time.Millisecond)
	}
}
