package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgfm/pgfm/internal/dcs"
)

// The epoch this standby last re-pointed itself for lives in state.dir, so
// a restarted agent neither repeats nor forgets a reconfiguration.
func (a *Agent) followedPath() string { return filepath.Join(a.cfg.StateDir, "followed-epoch") }

// followedEpoch is the last epoch followed; the first call adopts the
// current epoch when the standby already streams from the current primary
// (the user's own setup is left alone).
func (a *Agent) followedEpoch() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.followed != 0 {
		return a.followed
	}
	if !a.followedRead { // the file is read once; later changes are ours
		a.followedRead = true
		if b, err := os.ReadFile(a.followedPath()); err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				a.followed = v
				return v
			}
		}
	}
	// Only a standby that streams from the primary the record names now
	// follows its epoch already; one still streaming from an old primary
	// (which died without closing the connection, or still runs) must be
	// re-pointed (node.Step decides that).
	if a.status.DB.WalReceiver == "streaming" && a.primary.Epoch > 0 &&
		a.status.DB.SenderHost == a.primary.Node && a.primary.Phase == dcs.PhasePromoted {
		a.followed = a.primary.Epoch
		_ = os.WriteFile(a.followedPath(), []byte(strconv.FormatUint(a.followed, 10)+"\n"), 0o600)
	}
	return a.followed
}

func (a *Agent) setFollowedEpoch(e uint64) {
	a.mu.Lock()
	a.followed = e
	a.mu.Unlock()
	tmp := a.followedPath() + ".tmp"
	if os.WriteFile(tmp, []byte(strconv.FormatUint(e, 10)+"\n"), 0o600) == nil {
		_ = os.Rename(tmp, a.followedPath())
	}
}
