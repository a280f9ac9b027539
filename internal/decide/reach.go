package decide

import (
	"slices"
	"strings"
	"time"
)

// reach is what the other agents, together, see of one node's database.
type reach struct {
	up, down []string // observers with a fresh probe, by answer, sorted
}

// reachOf collects the fresh probes of node's database made by agents other
// than its own. A probe older than node.timeout says nothing about now.
func reachOf(v View, node string, now time.Time) reach {
	var r reach
	for observer, p := range v.Members[node].RemoteDB {
		if observer == node || !fresh(p.At, now, v.Settings.NodeTimeout) {
			continue
		}
		if p.Up {
			r.up = append(r.up, observer)
		} else {
			r.down = append(r.down, observer)
		}
	}
	slices.Sort(r.up)
	slices.Sort(r.down)
	return r
}

func fresh(at, now time.Time, limit time.Duration) bool {
	return limit <= 0 || now.Sub(at) <= limit
}

// reachable: at least one other agent reaches the database now.
func (r reach) reachable() bool { return len(r.up) > 0 }

// unreachable: other agents probed it recently and none reached it.
// No fresh probe at all is not proof of failure.
func (r reach) unreachable() bool { return len(r.up) == 0 && len(r.down) > 0 }

func (r reach) String() string {
	switch {
	case r.reachable():
		return "reachable from " + strings.Join(r.up, ", ")
	case r.unreachable():
		return "unreachable from " + strings.Join(r.down, ", ")
	default:
		return "not probed by any other agent within node.timeout"
	}
}
