// Package syncrep decides synchronous replication as the cluster manages
// it (synchronous.mode): which standbys the primary waits for, in which
// order the set recorded in etcd and the primary's
// synchronous_standby_names change, and which standbys can be promoted
// without losing an acknowledged write. It is pure: no I/O.
//
// The invariant: every write the primary acknowledged is on at least
// Quorum members of the recorded set. A set moving from A to B is recorded
// as Via(A, B) while the primary's setting changes, so the invariant holds
// for writes acknowledged under either; then as B.
package syncrep

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Modes of synchronous.mode.
const (
	Off    = "off"
	On     = "on"
	Strict = "strict"
)

// Set is a synchronous set: each acknowledged write is on Quorum of
// Members (node addresses, sorted). Quorum 0: the primary acknowledges
// alone.
type Set struct {
	Members []string
	Quorum  int
}

// Equal reports whether s and o are the same set.
func (s Set) Equal(o Set) bool {
	return s.Quorum == o.Quorum && slices.Equal(s.Members, o.Members)
}

func (s Set) String() string {
	if s.Quorum == 0 {
		return "none (the primary acknowledges alone)"
	}
	return fmt.Sprintf("ANY %d (%s)", s.Quorum, strings.Join(s.Members, ", "))
}

// Want is the set a primary should wait for now. healthy are the standbys
// that stream from it, caught up, and may be promoted; current is the set
// it uses; others are every other database node. on: every healthy
// standby, Quorum count or as many as there are (0 when none: the primary
// goes on alone). strict: the same while count of them are healthy; below
// that the standbys of current stay listed (and, when still too few, every
// other node), so writes wait rather than go on with fewer.
func Want(mode string, count int, healthy []string, current Set, others []string) Set {
	if mode == Off {
		return Set{}
	}
	members := sorted(healthy)
	if mode == Strict && len(members) < count {
		members = union(members, current.Members)
		if len(members) < count {
			members = union(members, others)
		}
	}
	return Set{Members: members, Quorum: min(count, len(members))}
}

// CaughtUp says whether every write acknowledged before the setting
// changed to s (those at or before lsn) is on s.Quorum of its members:
// flushed holds the members' flushed positions.
func CaughtUp(s Set, flushed map[string]cluster.LSN, lsn cluster.LSN) bool {
	n := 0
	for _, m := range s.Members {
		if l, ok := flushed[m]; ok && l >= lsn {
			n++
		}
	}
	return n >= s.Quorum
}

// Initial is the setting a standby takes as it is promoted, before its
// first write: on, nobody yet (the standbys join once they stream from
// it); strict, every other database node, count of them. The set recorded
// for the new primary starts empty either way: the old primary's writes
// are certainly on the new one only.
func Initial(mode string, count int, others []string) Set {
	if mode != Strict {
		return Set{}
	}
	members := sorted(others)
	return Set{Members: members, Quorum: min(count, len(members))}
}

// Via is the set to record while the primary's setting moves to b from a
// setting whose writes are recorded as a: every write acknowledged before
// (on a.Quorum members of a) or under b is on Via's Quorum members. Once
// b's members hold every earlier write (CaughtUp), b alone is recorded.
func Via(a, b Set) Set {
	u := union(a.Members, b.Members)
	return Set{Members: u, Quorum: min(a.Quorum, b.Quorum)}
}

// StandbyNames is synchronous_standby_names for s; names maps a node
// address to its standby's application_name (the address when missing).
func StandbyNames(s Set, names map[string]string) string {
	if s.Quorum == 0 || len(s.Members) == 0 {
		return ""
	}
	quoted := make([]string, len(s.Members))
	for i, m := range s.Members {
		n := names[m]
		if n == "" {
			n = m
		}
		quoted[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	return "ANY " + strconv.Itoa(s.Quorum) + " (" + strings.Join(quoted, ", ") + ")"
}

// Lossless says which standbys can be promoted without losing a write
// acknowledged under the recorded set rec. seen holds the standbys whose
// received WAL is known now. With Quorum k over n members, a write is on k
// of them, so among any n-k+1 of them one has it: the one with the most
// WAL has every write. It returns the members seen with the most WAL, or
// why none can be promoted.
func Lossless(rec Set, seen map[string]cluster.LSN) ([]string, string) {
	if rec.Quorum == 0 || len(rec.Members) == 0 {
		return nil, "the primary acknowledged writes without a synchronous standby (none was healthy): no standby is certain to have them"
	}
	need := len(rec.Members) - rec.Quorum + 1
	var got []string
	var most cluster.LSN
	for _, m := range rec.Members {
		if l, ok := seen[m]; ok {
			got = append(got, m)
			most = max(most, l)
		}
	}
	if len(got) < need {
		return nil, fmt.Sprintf("%d of the synchronous standbys %s answer (%s); %d are needed to be sure one has every acknowledged write",
			len(got), strings.Join(rec.Members, " "), strings.Join(got, " "), need)
	}
	var best []string
	for _, m := range got {
		if seen[m] == most {
			best = append(best, m)
		}
	}
	return best, ""
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func union(a, b []string) []string {
	return sorted(append(slices.Clone(a), b...))
}
