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
		a.saveFollowed(a.followed)
	}
	return a.followed
}

func (a *Agent) setFollowedEpoch(e uint64) {
	a.mu.Lock()
	a.followed = e
	a.mu.Unlock()
	a.saveFollowed(e)
}

// saveFollowed writes the followed epoch to state.dir; a failure costs at
// most a repeated reconfiguration after a restart, so it is only logged.
func (a *Agent) saveFollowed(e uint64) {
	if err := replaceFile(a.followedPath(), []byte(strconv.FormatUint(e, 10)+"\n")); err != nil {
		a.log.Warn("cannot record the followed epoch in state.dir", "epoch", e, "err", err)
	}
}

// replaceFile replaces path with a file (0600) holding data: written to a
// temporary file created exclusively beside it (never one planted there,
// nor the target of a symbolic link), then renamed over path, which
// replaces a link at path rather than writing through it.
func replaceFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
