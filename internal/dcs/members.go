package dcs

import (
	"context"
	"fmt"
)

// Member is one member of the embedded etcd cluster. Membership is only
// managed in embedded mode: an external etcd's members are its owner's.
type Member struct {
	ID        uint64
	Name      string // empty until the member has started
	PeerURLs  []string
	IsLearner bool
}

// Members lists the etcd cluster's members.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	r, err := s.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("dcs: list members: %w", err)
	}
	out := make([]Member, 0, len(r.Members))
	for _, m := range r.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner})
	}
	return out, nil
}

// AddLearner adds a non-voting member at peerURL and returns its ID and
// the membership after the change.
func (s *Store) AddLearner(ctx context.Context, peerURL string) (uint64, []Member, error) {
	r, err := s.cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return 0, nil, err
	}
	out := make([]Member, 0, len(r.Members))
	for _, m := range r.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner})
	}
	return r.Member.ID, out, nil
}

// RemoveMember removes member id from the etcd cluster.
func (s *Store) RemoveMember(ctx context.Context, id uint64) error {
	_, err := s.cli.MemberRemove(ctx, id)
	return err
}

// PromoteMember makes learner id a voter; etcd refuses until it caught up.
func (s *Store) PromoteMember(ctx context.Context, id uint64) error {
	_, err := s.cli.MemberPromote(ctx, id)
	return err
}

// LeaderOf asks the member at endpoint which member leads and who it is.
func (s *Store) LeaderOf(ctx context.Context, endpoint string) (leader, self uint64, err error) {
	st, err := s.cli.Status(ctx, endpoint)
	if err != nil {
		return 0, 0, err
	}
	return st.Leader, st.Header.MemberId, nil
}

// MoveLeader hands the etcd leadership to member id (asked of the leader).
func (s *Store) MoveLeader(ctx context.Context, id uint64) error {
	_, err := s.cli.MoveLeader(ctx, id)
	return err
}
