package testenv

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// alive reports whether pid is a running process. A zombie counts as dead:
// a postmaster killed after pg_ctl exited is reparented to PID 1, which in a
// container may never reap it.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// reaped reports whether pid no longer exists at all, not even as a zombie.
// pg_ctl and the postmaster's lock-file check take a zombie for a live
// server, so a killed postmaster must be reaped before the next start.
func reaped(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// children lists pid's direct children: a postmaster's backends and
// auxiliary processes, which outlive a SIGKILLed postmaster for a moment.
func children(pid int) []int {
	if pid <= 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(p); ok && ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// procStat reads a process's state letter and parent pid from /proc.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	// The command name is in parentheses and may hold anything: skip past
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0], ppid, err == nil
}

// killAll SIGKILLs every pid that still lives.
func killAll(pids []int) {
	for _, p := range pids {
		if alive(p) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// allDead reports whether none of pids lives.
func allDead(pids []int) bool {
	for _, p := range pids {
		if alive(p) {
			return false
		}
	}
	return true
}
