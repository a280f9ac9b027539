package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// agentPID finds the agent process of n: the one whose command line is
// `pgfm --config-dir CONFIGDIR agent CLUSTER` (the harness does not expose
// its pid; CLI calls have another command after the config dir).
func agentPID(n *testenv.Node) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for i := 0; i+2 < len(args); i++ {
			if args[i] == "--config-dir" && args[i+1] == n.ConfigDir && args[i+2] == "agent" {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no agent process for %s (config dir %s)", n.Name, n.ConfigDir)
}

// procSample reads a process's resident set (KiB) and CPU time (ticks).
func procSample(pid int) (rssKiB int64, ticks int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// After the name: state(0) ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime(11) stime(12).
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return rssKiB, u + s, nil
}

// procWatch samples one process until stopped.
type procWatch struct {
	pid                   int
	maxRSS                int64 // KiB
	firstTicks, lastTicks int64
	first, last           time.Time
	samples               int
}

func (w *procWatch) sample() {
	rss, ticks, err := procSample(w.pid)
	if err != nil {
		return // gone: keep what was seen
	}
	now := time.Now()
	if w.samples == 0 {
		w.firstTicks, w.first = ticks, now
	}
	w.lastTicks, w.last = ticks, now
	w.maxRSS = max(w.maxRSS, rss)
	w.samples++
}

// cpuPercent is the process's CPU time over the wall time sampled, in
// percent of one core.
func (w *procWatch) cpuPercent() float64 {
	wall := w.last.Sub(w.first).Seconds()
	if w.samples < 2 || wall <= 0 {
		return 0
	}
	return float64(w.lastTicks-w.firstTicks) / clockTicks / wall * 100
}

// sampler watches agent processes every interval.
type sampler struct {
	watches []*procWatch
	stopc   chan struct{}
	done    chan struct{}
	once    sync.Once
}

func startSampler(pids []int, interval time.Duration) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	for _, p := range pids {
		w := &procWatch{pid: p}
		w.sample()
		s.watches = append(s.watches, w)
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				for _, w := range s.watches {
					w.sample()
				}
				return
			case <-t.C:
				for _, w := range s.watches {
					w.sample()
				}
			}
		}
	}()
	return s
}

// stop ends sampling and returns the largest resident set (MiB) and the
// highest average CPU use (percent of a core) among the processes.
func (s *sampler) stop() (rssMiB, cpuPct float64) {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
	for _, w := range s.watches {
		rssMiB = max(rssMiB, float64(w.maxRSS)/1024)
		cpuPct = max(cpuPct, w.cpuPercent())
	}
	return rssMiB, cpuPct
}
