package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/testenv"
)

// replicationStatus runs replication-status --json on n.
func replicationStatus(t *testing.T, n *testenv.Node) (httpapi.ReplicationReport, int, error) {
	t.Helper()
	out, errOut, code := n.CLI(t, "replication-status", n.Cluster, "--json")
	var rep httpapi.ReplicationReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return rep, code, fmt.Errorf("replication-status --json on %s: exit %d, not JSON: %v; stderr: %s", n.Name, code, err, errOut)
	}
	return rep, code, nil
}

// waitReplication polls replication-status --json on n until cond holds.
func waitReplication(t *testing.T, n *testenv.Node, timeout time.Duration, what string, cond func(httpapi.ReplicationReport, int) error) httpapi.ReplicationReport {
	t.Helper()
	var last httpapi.ReplicationReport
	testenv.WaitFor(t, timeout, what, func() (bool, error) {
		rep, code, err := replicationStatus(t, n)
		if err != nil {
			return false, err
		}
		last = rep
		if err := cond(rep, code); err != nil {
			return false, err
		}
		return true, nil
	})
	return last
}

func standbyLine(rep httpapi.ReplicationReport, n *testenv.Node) (httpapi.StandbyReplication, error) {
	for _, s := range rep.Standbys {
		if s.Node == n.Host {
			return s, nil
		}
	}
	return httpapi.StandbyReplication{}, fmt.Errorf("standby %s not in the report: %+v", n.Host, rep.Standbys)
}

// replication-status on the witness: both standbys streaming from the
// primary; one whose replay is paused lags but still streams (exit 0);
// one whose database stopped is not connected (exit 1), with the reason.
func TestReplicationStatus(t *testing.T) {
	fc := newFailoverCluster(t, nil)
	primary, paused, stopped, witness := fc.Nodes[0], fc.Nodes[1], fc.Nodes[2], fc.Nodes[3]

	rep := waitReplication(t, witness, 30*time.Second, "both standbys streaming", func(rep httpapi.ReplicationReport, code int) error {
		if code != 0 || rep.Primary != primary.Host || rep.CurrentLSN == 0 || len(rep.Standbys) != 2 || len(rep.Others) != 0 {
			return fmt.Errorf("exit %d, primary %s at %s, standbys %+v, others %+v", code, rep.Primary, rep.CurrentLSN, rep.Standbys, rep.Others)
		}
		for _, n := range []*testenv.Node{paused, stopped} {
			s, err := standbyLine(rep, n)
			if err != nil {
				return err
			}
			// Every standby connects from 127.0.0.1: the receiver's
			// application name (the harness's node name, or the node's
			// address once its agent re-pointed it) tells them apart.
			if !s.Streaming() || s.Upstream != primary.Host || s.SyncState != "async" || (s.ApplicationName != n.PG.Name && s.ApplicationName != n.Host) ||
				s.SentLSN == 0 || s.ReplayLSN == 0 || s.ReplayLSN > rep.CurrentLSN || s.LagBytes == nil || s.PID == 0 {
				return fmt.Errorf("standby %s: %+v", n.Name, s)
			}
		}
		return nil
	})
	t.Logf("replication-status --json:\n%s", cli(t, witness, "replication-status", "prod", "--json"))
	t.Logf("replication-status:\n%s", cli(t, witness, "replication-status", "prod"))

	// Replay paused while the writer writes: lag, still streaming.
	paused.PG.Exec(t, "SELECT pg_wal_replay_pause()")
	var stuck httpapi.StandbyReplication
	rep = waitReplication(t, witness, 30*time.Second, "the paused standby lagging", func(rep httpapi.ReplicationReport, code int) error {
		s, err := standbyLine(rep, paused)
		if err != nil {
			return err
		}
		if code != 0 || !s.Streaming() || s.LagBytes == nil || *s.LagBytes <= 0 {
			return fmt.Errorf("exit %d (lag alone must not make it 1), paused standby %+v", code, s)
		}
		if stuck.ReplayLSN == 0 || s.ReplayLSN != stuck.ReplayLSN || s.FlushLSN <= stuck.FlushLSN {
			// Two reports in a row with replay stuck while WAL arrives.
			stuck = s
			return fmt.Errorf("replayed %s, flushed %s: not yet stuck", s.ReplayLSN, s.FlushLSN)
		}
		return nil
	})
	s, _ := standbyLine(rep, paused)
	t.Logf("paused standby lags %d bytes", *s.LagBytes)
	t.Logf("replication-status, replay paused on %s:\n%s", paused.Host, cli(t, witness, "replication-status", "prod"))

	paused.PG.Exec(t, "SELECT pg_wal_replay_resume()")
	waitReplication(t, witness, 30*time.Second, "the paused standby caught up", func(rep httpapi.ReplicationReport, code int) error {
		s, err := standbyLine(rep, paused)
		if err != nil {
			return err
		}
		if code != 0 || !s.Streaming() || s.ReplayLSN <= stuck.ReplayLSN || s.LagBytes == nil || *s.LagBytes > 1<<20 {
			return fmt.Errorf("exit %d, standby %+v", code, s)
		}
		return nil
	})

	// A standby whose database stopped: not connected, exit 1, why.
	stopped.PG.Stop(t, "fast")
	rep = waitReplication(t, witness, 30*time.Second, "the stopped standby not connected", func(rep httpapi.ReplicationReport, code int) error {
		s, err := standbyLine(rep, stopped)
		if err != nil {
			return err
		}
		if code != 1 || s.Connected || s.State != httpapi.StateNotConnected || !strings.Contains(s.Detail, "its database does not answer") {
			return fmt.Errorf("exit %d, stopped standby %+v", code, s)
		}
		return nil
	})
	out, _, code := witness.CLI(t, "replication-status", "prod")
	t.Logf("replication-status, %s stopped (exit %d):\n%s", stopped.Host, code, out)
	if code != 1 || !strings.Contains(out, "Standby "+stopped.Host+" is not connected to the primary") {
		t.Fatalf("exit %d, text output:\n%s", code, out)
	}
	if s, err := standbyLine(rep, paused); err != nil || !s.Streaming() {
		t.Fatalf("the other standby: %+v, %v", s, err)
	}
}
