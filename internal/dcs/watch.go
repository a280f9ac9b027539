package dcs

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Revision is etcd's current revision: requests made before it are history.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	r, err := s.cli.Get(ctx, s.keyStop(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("dcs: read revision: %w", err)
	}
	return r.Header.Revision, nil
}

// WatchStatuses calls fn whenever any agent publishes or loses its status,
// until ctx ends or the watch breaks; the caller then calls it again.
func (s *Store) WatchStatuses(ctx context.Context, fn func()) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for w := range s.cli.Watch(wctx, s.prefix+"status/", clientv3.WithPrefix()) {
		if err := w.Err(); err != nil {
			return fmt.Errorf("dcs: watch statuses: %w", err)
		}
		fn()
	}
	return ctx.Err()
}

// MembershipEvents are what WatchMembership reports.
type MembershipEvents struct {
	// Changed: registrations changed; removed lists the addresses whose
	// registration was deleted (disallow-node). Called once at the start.
	Changed func(removed []string)
	// Stop: stop-cluster was requested after the revision given.
	Stop func()
}

// WatchMembership reads the registrations and the stop request, then
// watches both from that read's revision, so nothing committed meanwhile
// is missed. It returns when ctx ends, after Stop, or when the watch
// breaks (the caller calls it again).
func (s *Store) WatchMembership(ctx context.Context, after int64, ev MembershipEvents) error {
	r, err := s.cli.Get(ctx, s.keyStop())
	if err != nil {
		return fmt.Errorf("dcs: read stop request: %w", err)
	}
	ev.Changed(nil)
	if len(r.Kvs) > 0 && r.Kvs[0].ModRevision > after {
		ev.Stop()
		return nil
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := clientv3.WithRev(r.Header.Revision + 1)
	nodes := s.cli.Watch(wctx, s.NodesPrefix(), clientv3.WithPrefix(), from)
	stop := s.cli.Watch(wctx, s.keyStop(), from)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case w, ok := <-nodes:
			if !ok || w.Err() != nil {
				return fmt.Errorf("dcs: watch registrations: %v", w.Err())
			}
			var removed []string
			for _, e := range w.Events {
				if e.Type == clientv3.EventTypeDelete {
					removed = append(removed, strings.TrimPrefix(string(e.Kv.Key), s.NodesPrefix()))
				}
			}
			ev.Changed(removed)
		case w, ok := <-stop:
			if !ok || w.Err() != nil {
				return fmt.Errorf("dcs: watch stop request: %v", w.Err())
			}
			for _, e := range w.Events {
				if e.Type == clientv3.EventTypePut {
					ev.Stop()
					return nil
				}
			}
		}
	}
}

// HasStatus reports whether addr's agent has a published status (is live).
func (s *Store) HasStatus(ctx context.Context, addr string) (bool, error) {
	r, err := s.cli.Get(ctx, s.keyStatus(addr), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("dcs: read status: %w", err)
	}
	return r.Count > 0, nil
}
