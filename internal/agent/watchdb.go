package agent

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/postgres"
)

// dbWatchLoop holds a connection to target's database and, the moment it
// breaks (a killed postmaster closes every connection), wakes the publish
// loop: a dead postmaster is noticed at once, not at the next probe.
func (a *Agent) dbWatchLoop(ctx context.Context, target func() string) {
	for ctx.Err() == nil {
		host := target()
		if host == "" {
			sleep(ctx, a.cfg.LocalPeriod)
			continue
		}
		started := time.Now()
		err := postgres.WatchConnection(ctx, a.connString(ctx, host, a.cfg.DB.Port, a.cfg.LocalTimeout))
		if ctx.Err() != nil {
			return
		}
		err = a.connFailed(err)
		a.log.Debug("database connection broke; observing now", "host", host, "err", err)
		a.wake(a.publishKick)
		// A server that refuses connections must not make this a busy loop.
		if time.Since(started) < a.cfg.LocalPeriod {
			sleep(ctx, a.cfg.LocalPeriod)
		}
	}
}

// localTarget is the local database on a database node.
func (a *Agent) localTarget() string {
	if a.cfg.IsWitness {
		return ""
	}
	return a.self
}

// primaryTarget is the primary's database, when it is another node.
func (a *Agent) primaryTarget() string {
	p, _ := a.currentPrimary()
	if p.Node == a.self {
		return ""
	}
	return p.Node
}

// postmasterGone reports whether the local postmaster is known not to run:
// no postmaster.pid, or its process is gone (or a zombie).
func (a *Agent) postmasterGone() bool {
	if a.cfg.IsWitness {
		return false
	}
	b, err := os.ReadFile(a.cfg.DB.DataDir + "/postmaster.pid")
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		return false // cannot tell
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}
