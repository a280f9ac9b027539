package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/testenv"
)

// External etcd (dcs.endpoints): the agents run no etcd member and use a
// real 3-member etcd cluster that the test runs; no witness anywhere.

// externalProps points agents at etcd through endpoints (the cluster's own
// or proxies in front of them), with its TLS files and user when secured.
func externalProps(etcd *testenv.EtcdCluster, user, password string, endpoints ...string) map[string]string {
	p := map[string]string{"dcs.endpoints": strings.Join(endpoints, ",")}
	if etcd.CACertFile != "" {
		p["dcs.cacert"], p["dcs.cert"], p["dcs.key"] = etcd.CACertFile, etcd.ClientCertFile, etcd.ClientKeyFile
	}
	if user != "" {
		p["dcs.user"], p["dcs.password"] = user, password
	}
	return p
}

// noEmbeddedMember: an agent on an external etcd starts no member.
func noEmbeddedMember(t *testing.T, nodes ...*testenv.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := os.Stat(filepath.Join(n.StateDir, "etcd")); !os.IsNotExist(err) {
			t.Fatalf("agent %s has an embedded etcd member's data in %s (err %v)", n.Name, n.StateDir, err)
		}
	}
}

// A node crash on a secured external etcd (TLS with client certificates,
// a user limited to /pgfm/): the standby with the most WAL is promoted,
// the other follows it, and the old primary's writes stop first.
func TestExternalEtcdNodeCrash(t *testing.T) {
	etcd := testenv.StartEtcdCluster(t, testenv.EtcdClusterOptions{TLS: true, User: "pgfm", Password: "etcd-secret"})
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 2, Props: externalProps(etcd, "pgfm", "etcd-secret", etcd.Endpoints()...)})
	c.StartAll(t)
	noEmbeddedMember(t, c.Nodes...)
	// .nodes keeps its meaning: every agent registered in etcd.
	testenv.WaitFor(t, 20*time.Second, ".nodes lists every agent", func() (bool, error) {
		got := nodesFile(t, c.Nodes[2])
		return check(len(got) == 3, ".nodes of %s: %v", c.Nodes[2].Name, got)
	})
	var hosts []string
	for _, n := range c.PG.Nodes {
		hosts = append(hosts, n.Host)
	}
	w := testenv.StartWriter(t, c.PG.Primary(), hosts, c.PG.Port)
	w.WaitAcked(t, c.Primary().Host, 30*time.Second)

	old := c.Primary()
	old.Kill(t)
	old.PG.Kill(t)
	st := waitStatus(t, c.Nodes[1], 60*time.Second, "a standby promoted", func(st efmStatus, code int) error {
		if st.Primary == old.Host || st.PrimaryPhase != "promoted" || st.Nodes[st.Primary].Type != "Primary" {
			return fmt.Errorf("primary record %s (%s) epoch %d; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Messages)
		}
		return nil
	})
	var np, other *testenv.Node
	for _, n := range c.Nodes[1:] {
		if n.Host == st.Primary {
			np = n
		} else {
			other = n
		}
	}
	w.WaitAcked(t, np.Host, 30*time.Second)
	w.Stop()
	gap, late := testenv.History(w.Acked(), old.Host, np.Host)
	t.Logf("write unavailability on an external etcd: %s", gap)
	if len(late) > 0 {
		t.Fatalf("%d writes acknowledged by the old primary after the new one took its first: %v", len(late), late)
	}
	testenv.WaitFor(t, 60*time.Second, "the other standby follows the new primary", func() (bool, error) {
		var sender string
		if err := other.PG.TryQueryRow("SELECT coalesce((SELECT sender_host FROM pg_stat_wal_receiver), '')", &sender); err != nil {
			return false, err
		}
		return check(sender == np.Host, "standby %s streams from %q", other.Name, sender)
	})
}

// The primary loses etcd (its connections to every member cut, as in a
// partition) while the standbys keep it: it stops its database before its
// lease can have expired in etcd, and a standby is promoted.
func TestExternalEtcdIsolatedPrimaryFencesItself(t *testing.T) {
	etcd := testenv.StartEtcdCluster(t, testenv.EtcdClusterOptions{})
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Props: externalProps(etcd, "", "", etcd.Endpoints()...)})
	primary, standby := c.Nodes[0], c.Nodes[1]
	var proxies []*testenv.Proxy
	var through []string
	for i := range etcd.Endpoints() {
		p := testenv.NewProxy(t, primary.Host, etcd.ClientAddr(i))
		proxies = append(proxies, p)
		through = append(through, "http://"+p.Addr())
	}
	primary.WriteProperties(t, externalProps(etcd, "", "", through...))
	c.StartAll(t)

	for _, p := range proxies {
		p.Cut()
	}
	cut := time.Now()
	testenv.WaitFor(t, 20*time.Second, "the isolated primary stops its database", func() (bool, error) {
		return check(!primary.PG.Running(t), "the primary's database still runs")
	})
	t.Logf("primary cut off from the external etcd fenced %s after the cut (node.timeout 3s)", time.Since(cut))
	// Invariant 1: the database was stopped while the agent's lease was
	// still certainly valid, so before etcd could expire it and let a
	// standby be promoted.
	stopped, valid := fenceTimes(t, primary)
	if !stopped.Before(valid) {
		t.Fatalf("the database was stopped at %s, not before the lease's end (%s)", stopped.Format(time.RFC3339Nano), valid.Format(time.RFC3339Nano))
	}
	if !strings.Contains(primary.Output(), "fencing the isolated primary") {
		t.Fatalf("the agent does not say why it stopped its database:\n%s", tailOf(primary.Output()))
	}
	waitStatus(t, standby, 60*time.Second, "the standby promoted", func(st efmStatus, code int) error {
		if st.Primary != standby.Host || st.PrimaryPhase != "promoted" {
			return fmt.Errorf("primary record %s (%s) epoch %d", st.Primary, st.PrimaryPhase, st.Epoch)
		}
		return nil
	})
	// Healed, the old primary stays down: it needs a rejoin.
	for _, p := range proxies {
		p.Restore()
	}
	waitStatus(t, standby, 30*time.Second, "the old primary's agent back, idle", func(st efmStatus, code int) error {
		if n := st.Nodes[primary.Host]; n.Agent != "IDLE" {
			return fmt.Errorf("old primary %+v", n)
		}
		return nil
	})
	if primary.PG.Running(t) {
		t.Fatal("the old primary's database runs again after the failover")
	}
}

// Two pgfm clusters share one etcd, each under its own prefix: a failover
// in one changes nothing in the other, and neither lists the other's
// nodes.
func TestExternalEtcdSharedByTwoClusters(t *testing.T) {
	etcd := testenv.StartEtcdCluster(t, testenv.EtcdClusterOptions{})
	props := externalProps(etcd, "", "", etcd.Endpoints()...)
	alpha := testenv.NewAgentCluster(t, testenv.AgentOptions{Name: "alpha", Standbys: 1, Props: props})
	beta := testenv.NewAgentCluster(t, testenv.AgentOptions{Name: "beta", Standbys: 1, Props: props})
	alpha.StartAll(t)
	beta.StartAll(t)

	old := alpha.Primary()
	old.PG.Kill(t)
	waitStatus(t, alpha.Nodes[1], 60*time.Second, "alpha failed over", func(st efmStatus, code int) error {
		if st.Primary != alpha.Nodes[1].Host || st.PrimaryPhase != "promoted" || st.Epoch != 2 {
			return fmt.Errorf("alpha: primary record %s (%s) epoch %d", st.Primary, st.PrimaryPhase, st.Epoch)
		}
		return nil
	})
	st, _, err := status(t, beta.Nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 1 || st.Primary != beta.Primary().Host {
		t.Fatalf("beta changed with alpha's failover: primary %s epoch %d", st.Primary, st.Epoch)
	}
	// beta's record is beta's: only its own primary writes it (its WAL
	// position), still epoch 1 naming beta's primary.
	if rec := etcd.Keys(t, "/pgfm/beta/primary")["/pgfm/beta/primary"]; !strings.Contains(rec, `"node":"`+beta.Primary().Host+`","epoch":1,`) {
		t.Fatalf("beta's primary record after alpha's failover: %s", rec)
	}
	for name, c := range map[string]*testenv.AgentCluster{"alpha": alpha, "beta": beta} {
		st, _, err := status(t, c.Nodes[1])
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Nodes) != 2 {
			t.Errorf("%s lists %d nodes, want its own 2: %v", name, len(st.Nodes), st.Nodes)
		}
		for _, n := range c.Nodes {
			if _, ok := st.Nodes[n.Host]; !ok {
				t.Errorf("%s does not list its node %s", name, n.Host)
			}
		}
	}
	// Every key of either cluster is under its own prefix.
	per := map[string]int{}
	for k := range etcd.Keys(t, "/pgfm/") {
		name, _, _ := strings.Cut(strings.TrimPrefix(k, "/pgfm/"), "/")
		per[name]++
	}
	if len(per) != 2 || per["alpha"] == 0 || per["beta"] == 0 {
		t.Errorf("keys per cluster prefix: %v, want only alpha's and beta's", per)
	}
}

// etcd loses its majority: no failover can happen, the primary stops its
// database once its lease may have expired, and when etcd is back the
// cluster has one writable primary again.
func TestExternalEtcdLosesMajority(t *testing.T) {
	etcd := testenv.StartEtcdCluster(t, testenv.EtcdClusterOptions{})
	c := testenv.NewAgentCluster(t, testenv.AgentOptions{Standbys: 1, Props: externalProps(etcd, "", "", etcd.Endpoints()...)})
	c.StartAll(t)
	primary, standby := c.Nodes[0], c.Nodes[1]

	etcd.Kill(0)
	etcd.Kill(1)
	lost := time.Now()
	testenv.WaitFor(t, 20*time.Second, "the primary stops its database", func() (bool, error) {
		return check(!primary.PG.Running(t), "the primary's database still runs")
	})
	t.Logf("primary fenced %s after etcd lost its majority", time.Since(lost))
	// Nothing is promoted without a majority: wait two node.timeouts.
	for time.Since(lost) < 6*time.Second {
		if rec, err := inRecovery(standby.PG); err != nil || !rec {
			t.Fatalf("the standby left recovery without an etcd majority (in recovery %v, %v)", rec, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	etcd.Start(t, 0)
	etcd.Start(t, 1)
	// Right after etcd's return the old primary's last status (Primary, up)
	// can still be read until its agent publishes again: wait for the
	// databases themselves.
	waitStatus(t, standby, 90*time.Second, "one writable primary again", func(st efmStatus, code int) error {
		if st.PrimaryPhase != "promoted" || st.Nodes[st.Primary].Type != "Primary" || st.Nodes[st.Primary].DB != "UP" {
			return fmt.Errorf("primary record %s (%s) epoch %d: %+v; messages %v", st.Primary, st.PrimaryPhase, st.Epoch, st.Nodes[st.Primary], st.Messages)
		}
		var writable []string
		for _, n := range c.PG.Nodes {
			if rec, err := inRecovery(n); err == nil && !rec {
				writable = append(writable, n.Host)
			}
		}
		if len(writable) != 1 || writable[0] != st.Primary {
			return fmt.Errorf("writable databases %v, primary record names %s", writable, st.Primary)
		}
		return nil
	})
}

func inRecovery(n *testenv.PGNode) (bool, error) {
	var rec bool
	err := n.TryQueryRow("SELECT pg_is_in_recovery()", &rec)
	return rec, err
}

// fenceTimes reads from an agent's log when it had stopped its isolated
// primary's database and until when its lease was certainly valid then.
func fenceTimes(t *testing.T, n *testenv.Node) (stopped, validUntil time.Time) {
	t.Helper()
	const msg = "the isolated primary's database is stopped"
	// The agent logs it once pg_ctl returns, which may be after the test
	// saw the server gone.
	testenv.WaitFor(t, 10*time.Second, "the agent logs its fence", func() (bool, error) {
		var ok bool
		if stopped, ok = n.LoggedAt(msg); !ok {
			return false, fmt.Errorf("no %q in its log", msg)
		}
		for _, l := range strings.Split(n.Output(), "\n") {
			if _, v, found := strings.Cut(l, "lease_valid_until="); found && strings.Contains(l, msg) {
				validUntil, _ = time.Parse(time.RFC3339Nano, strings.Fields(v)[0])
			}
		}
		return check(!validUntil.IsZero(), "%q logged without the lease's validity", msg)
	})
	return stopped, validUntil
}
