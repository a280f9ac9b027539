package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Operator settings kept in etcd, so every agent and every coordinator
// term sees them and they survive restarts: maintenance mode and the
// failover priorities set with set-priority.

// Maintenance is the maintenance-mode mark: while it exists no automatic
// failover and no local restart happens.
type Maintenance struct {
	Since time.Time `json:"since"`
	By    string    `json:"by"` // the node whose agent turned it on
}

func (s *Store) keyMaintenance() string          { return s.prefix + "maintenance" }
func (s *Store) keyPriority(addr string) string  { return s.prefix + "priority/" + addr }
func (m *Memory) keyMaintenance() string         { return m.prefix + "maintenance" }
func (m *Memory) keyPriority(addr string) string { return m.prefix + "priority/" + addr }
func priorityValue(p int) string                 { return strconv.Itoa(p) }
func parsePriority(v []byte) (int, error)        { return strconv.Atoi(strings.TrimSpace(string(v))) }

// SetMaintenance turns maintenance mode on (m non-nil) or off (nil).
func (s *Store) SetMaintenance(ctx context.Context, m *Maintenance) error {
	err := retryDropped(ctx, func() (err error) {
		if m == nil {
			_, err = s.cli.Delete(ctx, s.keyMaintenance())
		} else {
			b, _ := json.Marshal(m)
			_, err = s.cli.Put(ctx, s.keyMaintenance(), string(b))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("dcs: set maintenance mode: %w", err)
	}
	return nil
}

// SetPriority records addr's failover priority (set-priority).
func (s *Store) SetPriority(ctx context.Context, addr string, p int) error {
	if err := retryDropped(ctx, func() error { _, err := s.cli.Put(ctx, s.keyPriority(addr), priorityValue(p)); return err }); err != nil {
		return fmt.Errorf("dcs: set priority of %s: %w", addr, err)
	}
	return nil
}

// SetMaintenance turns maintenance mode on (m non-nil) or off (nil).
func (m *Memory) SetMaintenance(ctx context.Context, mark *Maintenance) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: set maintenance mode: %w", err)
	}
	defer m.mu.Unlock()
	if mark == nil {
		m.commitLocked(memDel(m.keyMaintenance()))
	} else {
		m.commitLocked(memPut(m.keyMaintenance(), mark))
	}
	return nil
}

// SetPriority records addr's failover priority (set-priority).
func (m *Memory) SetPriority(ctx context.Context, addr string, p int) error {
	if err := m.begin(ctx); err != nil {
		return fmt.Errorf("dcs: set priority of %s: %w", addr, err)
	}
	defer m.mu.Unlock()
	m.commitLocked(memOp{key: m.keyPriority(addr), value: []byte(priorityValue(p))})
	return nil
}

// Maintenance reads the maintenance mark; nil when the mode is off.
func (s *Store) Maintenance(ctx context.Context) (*Maintenance, error) {
	r, err := s.cli.Get(ctx, s.keyMaintenance())
	if err != nil {
		return nil, fmt.Errorf("dcs: read maintenance mode: %w", err)
	}
	if len(r.Kvs) == 0 {
		return nil, nil
	}
	return decodeMaintenance(r.Kvs[0].Value)
}

// Maintenance reads the maintenance mark; nil when the mode is off.
func (m *Memory) Maintenance(ctx context.Context) (*Maintenance, error) {
	if err := m.begin(ctx); err != nil {
		return nil, fmt.Errorf("dcs: read maintenance mode: %w", err)
	}
	defer m.mu.Unlock()
	kv, ok := m.kvs[m.keyMaintenance()]
	if !ok {
		return nil, nil
	}
	return decodeMaintenance(kv.value)
}

// decodeMaintenance reads a mark; one that cannot be read still means on:
// an operator asked for the mode, and failing over against that is worse.
func decodeMaintenance(v []byte) (*Maintenance, error) {
	var mark Maintenance
	if err := json.Unmarshal(v, &mark); err != nil {
		return &mark, fmt.Errorf("dcs: maintenance mark: %w", err)
	}
	return &mark, nil
}
