package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait waits for output pipes after the program
// exits or is killed: a postmaster started without a log file would otherwise
// hold them open for its whole life.
const waitDelay = 5 * time.Second

// Command returns an exec.Cmd for a PostgreSQL program in binDir. PostgreSQL
// refuses to run as root, so when we are root it runs as owner (with owner's
// HOME, USER and LOGNAME, in owner's home directory so no program complains
// about an unreadable working directory); otherwise it runs as ourselves. The
// program gets its own process group, and cancelling ctx kills the whole group.
func Command(ctx context.Context, binDir, owner, program string, args ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, program), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = waitDelay
	if os.Geteuid() != 0 {
		return cmd, nil
	}
	u, cred, err := lookupOwner(owner)
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr.Credential = cred
	cmd.Env = ownerEnv(u)
	cmd.Dir = "/"
	if st, err := os.Stat(u.HomeDir); err == nil && st.IsDir() {
		cmd.Dir = u.HomeDir
	}
	return cmd, nil
}

// killGroup kills the program and everything it started in its group.
func killGroup(cmd *exec.Cmd) error {
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// lookupOwner resolves the database's OS user to a credential.
func lookupOwner(owner string) (*user.User, *syscall.Credential, error) {
	if owner == "" || owner == "root" {
		return nil, nil, fmt.Errorf("postgres: refusing to run PostgreSQL as root: set db.service.owner to the database's OS user (usually postgres)")
	}
	u, err := user.Lookup(owner)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: os user %q of the database: %w (create it, e.g. useradd --system %s, or set db.service.owner)", owner, err, owner)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: uid of %q: %w", owner, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: gid of %q: %w", owner, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	// Supplementary groups matter, e.g. ssl-cert for reading server keys.
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return u, cred, nil
}

// ownerEnv is our environment with the identity variables replaced by owner's.
func ownerEnv(u *user.User) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HOME", "USER", "LOGNAME", "PWD":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
}
