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
	var err error
	if m == nil {
		_, err = s.cli.Delete(ctx, s.keyMaintenance())
	} else {
		b, _ := json.Marshal(m)
		_, err = s.cli.Put(ctx, s.keyMaintenance(), string(b))
	}
	if err != nil {
		return fmt.Errorf("dcs: set maintenance mode: %w", err)
	}
	return nil
}

// SetPriority records addr's failover priority (set-priority).
func (s *Store) SetPriority(ctx context.Context, addr string, p int) error {
	if _, err := s.cli.Put(ctx, s.keyPriority(addr), priorityValue(p)); err != nil {
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
