package hook

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// account is the OS user a Runner switches to before it runs a script.
type account struct {
	name string
	cred *syscall.Credential
	env  []string // HOME, USER and LOGNAME of the user
	dir  string   // working directory: the user's home, or / without one
}

// AsUser makes r run every script as the OS user name when the agent runs
// as root: with name's uid, primary group and supplementary groups, and
// its HOME, USER and LOGNAME, in its home directory (/ when it has none).
// The rest of the environment is inherited as before. Each script still
// runs in a process group of its own, killed as a whole on timeout.
//
// name "root" (any user with uid 0) runs scripts as the agent itself, as
// before script.user existed. When the agent is not root it cannot switch:
// scripts run as the agent's own user, name is not looked up and AsUser
// returns nil. It returns an error when name does not exist on this host
// (or cannot be resolved); r is then unchanged.
//
// Call AsUser before the first Run; it is not safe to call concurrently
// with Run.
func (r *Runner) AsUser(name string) error {
	if name == "" {
		return fmt.Errorf("hook: no user named to run scripts as")
	}
	if geteuid() != 0 {
		r.as = nil
		return nil
	}
	acct, err := lookupAccount(name)
	if err != nil {
		return err
	}
	r.as = acct
	return nil
}

// User is the name of the user scripts run as after AsUser switched to
// one, or "" when they run as the agent's own user.
func (r *Runner) User() string {
	if r.as == nil {
		return ""
	}
	return r.as.name
}

// geteuid is os.Geteuid; tests replace it to see a non-root agent.
var geteuid = os.Geteuid

// lookupAccount resolves name to a credential; nil for uid 0 (no switch).
func lookupAccount(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if errors.As(err, new(user.UnknownUserError)) {
			return nil, fmt.Errorf("hook: user %q does not exist on this host: %w", name, err)
		}
		return nil, fmt.Errorf("hook: cannot look up user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("hook: user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("hook: user %q: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, nil
	}
	// Groups is always set (at least the primary group): an empty list
	// would still clear root's groups, but the user's own must be kept
	// (ssh keys readable by a group, a sudoers rule for a group).
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("hook: user %q: supplementary groups: %w", name, err)
	}
	for _, id := range ids {
		g, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("hook: user %q: group id %q: %w", name, id, err)
		}
		if uint32(g) != uint32(gid) {
			cred.Groups = append(cred.Groups, uint32(g))
		}
	}
	dir := "/"
	if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
		dir = u.HomeDir
	}
	return &account{
		name: u.Username,
		cred: cred,
		env:  []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username},
		dir:  dir,
	}, nil
}
