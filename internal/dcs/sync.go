package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Sync is the synchronous set of synchronous.mode (package syncrep): the
// standbys every write the primary acknowledged is on, Quorum of them at
// least. The primary's agent writes it before it widens
// synchronous_standby_names and after it narrows it, so a failover
// decided on it never promotes a standby that may lack an acknowledged
// write.
type Sync struct {
	// Epoch and Primary name the primary that wrote it.
	Epoch   uint64   `json:"epoch"`
	Primary string   `json:"primary"`
	Members []string `json:"members"`
	// Quorum is the k of ANY k (Members); 0: the primary acknowledged
	// writes alone, so no standby is certain to have them.
	Quorum int       `json:"quorum"`
	Since  time.Time `json:"since"`
}

func (s *Store) keySync() string  { return s.prefix + "sync" }
func (m *Memory) keySync() string { return m.prefix + "sync" }

// Sync reads the synchronous set and its revision (0 and nil: none).
func (s *Store) Sync(ctx context.Context) (*Sync, int64, error) {
	r, err := s.cli.Get(ctx, s.keySync())
	if err != nil {
		return nil, 0, fmt.Errorf("dcs: read synchronous set: %w", err)
	}
	if len(r.Kvs) == 0 {
		return nil, 0, nil
	}
	rec, err := decodeSync(r.Kvs[0].Value)
	return rec, r.Kvs[0].ModRevision, err
}

// UpdateSync replaces the synchronous set (nil deletes it) if it is still
// at revision rev (0: it must not exist), and returns its new revision.
func (s *Store) UpdateSync(ctx context.Context, rev int64, rec *Sync) (int64, bool, error) {
	op := clientv3.OpDelete(s.keySync())
	if rec != nil {
		b, _ := json.Marshal(rec)
		op = clientv3.OpPut(s.keySync(), string(b))
	}
	r, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(s.keySync()), "=", rev)).Then(op).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("dcs: update synchronous set: %w", err)
	}
	if !r.Succeeded || rec == nil {
		return 0, r.Succeeded, nil
	}
	return r.Header.Revision, true, nil
}

// Sync reads the synchronous set and its revision (0 and nil: none).
func (m *Memory) Sync(ctx context.Context) (*Sync, int64, error) {
	if err := m.begin(ctx); err != nil {
		return nil, 0, fmt.Errorf("dcs: read synchronous set: %w", err)
	}
	defer m.mu.Unlock()
	kv, ok := m.kvs[m.keySync()]
	if !ok {
		return nil, 0, nil
	}
	rec, err := decodeSync(kv.value)
	return rec, kv.mod, err
}

// UpdateSync replaces the synchronous set (nil deletes it) if it is still
// at revision rev (0: it must not exist), and returns its new revision.
func (m *Memory) UpdateSync(ctx context.Context, rev int64, rec *Sync) (int64, bool, error) {
	if err := m.begin(ctx); err != nil {
		return 0, false, fmt.Errorf("dcs: update synchronous set: %w", err)
	}
	defer m.mu.Unlock()
	if m.modRev(m.keySync()) != rev {
		return 0, false, nil
	}
	if rec == nil {
		m.commitLocked(memDel(m.keySync()))
		return 0, true, nil
	}
	m.commitLocked(memPut(m.keySync(), rec))
	return m.modRev(m.keySync()), true, nil
}

// decodeSync reads a synchronous set. One that cannot be read is returned
// as a set with quorum 0, which promotes nobody: guessing could lose
// acknowledged writes.
func decodeSync(v []byte) (*Sync, error) {
	var rec Sync
	if err := json.Unmarshal(v, &rec); err != nil {
		return &Sync{}, fmt.Errorf("dcs: synchronous set: %w", err)
	}
	if rec.Quorum < 0 || rec.Quorum > len(rec.Members) {
		return &Sync{Epoch: rec.Epoch, Primary: rec.Primary}, fmt.Errorf("dcs: synchronous set: quorum %d of %d members", rec.Quorum, len(rec.Members))
	}
	return &rec, nil
}
