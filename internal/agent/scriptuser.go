package agent

import (
	"fmt"
	"strings"

	"github.com/pgfm/pgfm/internal/hook"
)

// scriptRunners returns the runner of the user's scripts and the
// notification script's own runner (a notification never waits behind a
// fence script). When the agent is root both run their scripts as
// script.user, or db.service.owner when script.user is empty; "root" runs
// them as root. That user must exist when a runner has a script to run; a
// node without scripts (a witness often has no postgres user) is not
// asked for one, and its runners have nothing to run.
func (a *Agent) scriptRunners() (scripts, notify *hook.Runner, err error) {
	c := a.cfg
	if scripts, err = a.scriptRunner(c.ScriptFence, c.ScriptPostPromotion, c.ScriptDBFailure, c.ScriptPrimaryIsolated, c.ScriptResumed); err != nil {
		return nil, nil, err
	}
	if notify, err = a.scriptRunner(c.ScriptNotification); err != nil {
		return nil, nil, err
	}
	return scripts, notify, nil
}

// scriptRunner returns a runner for cmdlines, switched to the scripts' user.
func (a *Agent) scriptRunner(cmdlines ...string) (*hook.Runner, error) {
	r := hook.NewRunner(a.log)
	configured := false
	for _, c := range cmdlines {
		configured = configured || strings.TrimSpace(c) != ""
	}
	if !configured {
		return r, nil
	}
	prop, name := "script.user", a.cfg.ScriptUser
	if name == "" {
		prop, name = "db.service.owner", a.cfg.DB.ServiceOwner
	}
	if err := r.AsUser(name); err != nil {
		return nil, fmt.Errorf("%w: scripts run as %s %q: %w; create the user or set script.user to one that exists on this host",
			ErrRefused, prop, name, err)
	}
	return r, nil
}
