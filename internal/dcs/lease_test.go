package dcs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

func TestAcceptRenewal(t *testing.T) {
	for _, c := range []struct {
		name          string
		before, after uint64
		want          bool
	}{
		{"first read after the grant: nothing to compare with", 0, 4, false},
		{"same term before and after", 4, 4, true},
		{"a new leader was elected meanwhile", 4, 5, false},
		{"a term read after a newer one cannot happen; refused anyway", 5, 4, false},
	} {
		if got := acceptRenewal(c.before, c.after); got != c.want {
			t.Errorf("%s: acceptRenewal(%d, %d) = %v, want %v", c.name, c.before, c.after, got, c.want)
		}
	}
}

// A renewal extends the lease's validity only once a read before and a
// read after it agree on the raft term; a revoked lease is reported lost.
func TestLeaseRenewalNeedsAConfirmedTerm(t *testing.T) {
	cli := testenv.StartEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(cli, "test").GrantLease(ctx, 3*time.Second, "x")
	if err != nil {
		t.Fatal(err)
	}
	granted := l.Until()

	if changed, err := l.renew(ctx, 5*time.Second); err != nil || !changed {
		t.Fatalf("first renewal: %v; term changed %v, want true (no term before it)", err, changed)
	}
	if l.term == 0 {
		t.Fatal("the first renewal's read recorded no raft term")
	}
	if !l.Until().Equal(granted) {
		t.Fatalf("the first renewal, with no term read before it, moved validity from %s to %s", granted, l.Until())
	}
	sent := time.Now()
	if changed, err := l.renew(ctx, 5*time.Second); err != nil || changed {
		t.Fatalf("second renewal: %v; term changed %v, want false", err, changed)
	}
	if got := l.Until(); !got.After(granted) || got.Before(sent.Add(l.ttl)) {
		t.Fatalf("a confirmed renewal sent at %s left validity at %s (granted until %s, ttl %s)", sent, got, granted, l.ttl)
	}

	// A read answered in another term than the one before the renewal
	// (as after a new leader's election) does not count.
	l.mu.Lock()
	l.term++
	l.mu.Unlock()
	before := l.Until()
	if changed, err := l.renew(ctx, 5*time.Second); err != nil || !changed {
		t.Fatalf("renewal across a term change: %v; term changed %v, want true", err, changed)
	}
	if !l.Until().Equal(before) {
		t.Fatalf("a renewal whose term changed moved validity from %s to %s", before, l.Until())
	}

	if _, err := cli.Revoke(ctx, l.id); err != nil {
		t.Fatal(err)
	}
	if _, err := l.renew(ctx, 5*time.Second); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewal of a revoked lease: %v, want ErrLeaseLost", err)
	}
}
