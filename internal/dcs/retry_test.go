package dcs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestRetryDropped(t *testing.T) {
	dropped := errors.New("rpc error: code = Unknown desc = raft proposal dropped")
	for _, c := range []struct {
		name  string
		errs  []error // what each try returns; nil after the list
		tries int
		fails bool
	}{
		{"success at once", nil, 1, false},
		{"dropped twice, then done", []error{dropped, dropped}, 3, false},
		{"leader changed, then done", []error{rpctypes.ErrGRPCLeaderChanged}, 2, false},
		{"another error is not retried", []error{errors.New("permission denied")}, 1, true},
		{"dropped for ever: gives up", []error{dropped, dropped, dropped, dropped, dropped, dropped, dropped, dropped, dropped, dropped}, 9, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tries := 0
			err := retryDropped(context.Background(), func() error {
				tries++
				if tries <= len(c.errs) {
					return c.errs[tries-1]
				}
				return nil
			})
			if tries != c.tries || (err != nil) != c.fails {
				t.Errorf("%d tries, err %v; want %d tries, failure %t", tries, err, c.tries, c.fails)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tries := 0
	err := retryDropped(ctx, func() error { tries++; return fmt.Errorf("x: %w", dropped) })
	if tries != 1 || err == nil {
		t.Errorf("with its context ended: %d tries, err %v; want 1 try and the error", tries, err)
	}
}
