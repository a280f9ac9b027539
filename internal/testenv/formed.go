package testenv

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FormTimeout bounds how long a cluster may take to form in the harness:
// generous, because a loaded 2-core machine runs race-built agents slowly;
// a collapse is reported at once, not at this timeout.
const FormTimeout = 90 * time.Second

// WaitHealthy waits until cluster-status-json on the last node exits 0 and
// shows every node. It fails at once, saying which node did what, when an
// agent exits or a failover runs before the test has begun.
func (c *AgentCluster) WaitHealthy(t testing.TB) Status {
	t.Helper()
	last := c.Nodes[len(c.Nodes)-1]
	return waitFormed(t, c.Nodes, func() (Status, int, error) {
		out, errOut, code := last.CLI(t, "cluster-status-json", c.Name)
		return parseStatus(last.Name, out, errOut, code)
	})
}

func parseStatus(node, out, errOut string, code int) (Status, int, error) {
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, code, fmt.Errorf("cluster-status-json on %s: exit %d, not JSON: %v; stderr: %s", node, code, err, errOut)
	}
	return st, code, nil
}

// waitFormed is WaitHealthy for any kind of node, given how to read the
// status.
func waitFormed(t testing.TB, nodes []*Node, status func() (Status, int, error)) Status {
	t.Helper()
	var last Status
	WaitFor(t, FormTimeout, "a healthy cluster of "+fmt.Sprint(len(nodes))+" nodes", func() (bool, error) {
		for _, n := range nodes {
			if !n.Running() {
				return false, GiveUp(fmt.Errorf("agent %s exited while the cluster formed\n%s", n.Name, Events(nodes...)))
			}
		}
		st, code, err := status()
		if err != nil {
			return false, err
		}
		last = st
		if st.Epoch > 1 {
			return false, GiveUp(fmt.Errorf("the cluster collapsed while forming: a failover ran before the test began (epoch %d names %s, phase %s; messages %v)\n%s",
				st.Epoch, st.Primary, st.PrimaryPhase, st.Messages, Events(nodes...)))
		}
		if code != 0 || len(st.Nodes) != len(nodes) {
			return false, fmt.Errorf("cluster-status-json exit %d, %d of %d nodes: %s", code, len(st.Nodes), len(nodes), st.brief())
		}
		return true, nil
	})
	return last
}

// brief is a status in one line: each node's type, agent and database.
func (st Status) brief() string {
	var parts []string
	for addr, n := range st.Nodes {
		parts = append(parts, fmt.Sprintf("%s %s agent %s db %s", addr, n.Type, n.Agent, n.DB))
	}
	return fmt.Sprintf("epoch %d primary %s (%s); %s; missing %v; messages %v",
		st.Epoch, st.Primary, st.PrimaryPhase, strings.Join(parts, ", "), st.MissingNodes, st.Messages)
}

// eventsPerNode caps the lines Events takes from one agent.
const eventsPerNode = 8

// Events is what each agent logged at warning level or above, its first
// lines: why a cluster wait failed is usually there, and it belongs at
// the top of a failure, not under a minute of logs.
func Events(nodes ...*Node) string {
	var b strings.Builder
	for _, n := range nodes {
		var lines []string
		for _, l := range strings.Split(n.Output(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&b, "agent %s logged %d warnings and errors; the first:\n", n.Name, len(lines))
		for _, l := range lines[:min(len(lines), eventsPerNode)] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "no agent logged a warning or an error"
	}
	return strings.TrimRight(b.String(), "\n")
}

// LoggedAt is the time of the first line the agent logged with message
// msg (slog's msg="..."), read from the line itself, so that events on
// different nodes of one machine can be put in order.
func (n *Node) LoggedAt(msg string) (time.Time, bool) {
	quoted := "msg=" + strconv.Quote(msg)
	for _, l := range strings.Split(n.Output(), "\n") {
		if !strings.Contains(l, quoted) && !strings.Contains(l, "msg="+msg+" ") {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "time=") {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}
