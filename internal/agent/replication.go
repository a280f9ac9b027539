package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/dcs"
	"github.com/pgfm/pgfm/internal/httpapi"
	"github.com/pgfm/pgfm/internal/postgres"
)

// Replication reports every standby's replication as the primary's WAL
// senders show it, queried now. Each standby's own WAL receiver is read
// too: it says which sender is the standby's when client addresses do not
// (NAT, several nodes on one host), and why one that is not connected is not.
func (a *Agent) Replication(ctx context.Context) (httpapi.ReplicationReport, error) {
	if !a.isReady() {
		return httpapi.ReplicationReport{}, a.notReady()
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RemoteTimeout+3*time.Second)
	defer cancel()
	snap, err := a.store.Snapshot(ctx)
	if err != nil {
		return httpapi.ReplicationReport{}, httpapi.Errorf(http.StatusServiceUnavailable, "cannot read the cluster state: %v", err)
	}
	if snap.PrimaryRev == 0 {
		return httpapi.ReplicationReport{}, httpapi.Errorf(http.StatusServiceUnavailable,
			"cluster %s has no primary record yet, so no primary to ask: see `pgfm cluster-status %s`", a.cfg.Cluster, a.cfg.Cluster)
	}
	p := snap.Primary
	primaryPort := a.cfg.DB.Port
	var standbys []cluster.Registration
	for _, reg := range snap.Registrations {
		switch {
		case reg.Address == p.Node:
			primaryPort = nodeDBPort(reg, snap, a.cfg.DB.Port)
		case !reg.Witness:
			standbys = append(standbys, reg)
		}
	}
	standbys = sortedByAddress(standbys)

	// The primary and every standby at once: one slow host costs one
	// connect timeout, not one each.
	db := a.cfg.DB
	conn := func(host string, port int) string {
		return a.connString(ctx, host, port, a.cfg.RemoteTimeout)
	}
	var senders postgres.Senders
	var senderErr error
	receivers := make([]postgres.Standby, len(standbys))
	receiverErrs := make([]error, len(standbys))
	var wg sync.WaitGroup
	wg.Go(func() {
		senders, senderErr = postgres.Replication(ctx, conn(p.Node, primaryPort))
		senderErr = a.connFailed(senderErr)
	})
	for i, reg := range standbys {
		receivers[i].Address = reg.Address
		wg.Go(func() {
			r, err := postgres.WalReceiver(ctx, conn(reg.Address, nodeDBPort(reg, snap, db.Port)))
			err = a.connFailed(err)
			if err == nil {
				receivers[i].Receiver = &r
			}
			receiverErrs[i] = err
		})
	}
	wg.Wait()
	if err := a.primaryQueryError(p, primaryPort, senders, senderErr); err != nil {
		return httpapi.ReplicationReport{}, err
	}

	rep := httpapi.ReplicationReport{
		Cluster: a.cfg.Cluster, Reporter: a.self, GeneratedAt: time.Now().UTC(),
		Primary: p.Node, Epoch: p.Epoch, PrimaryPhase: string(p.Phase), CurrentLSN: senders.CurrentLSN,
		Standbys: []httpapi.StandbyReplication{}, Others: []httpapi.StandbyReplication{},
	}
	match := postgres.Match(senders.Senders, receivers)
	used := make([]bool, len(senders.Senders))
	for i, reg := range standbys {
		rcv := receivers[i].Receiver
		line := httpapi.StandbyReplication{Node: reg.Address, State: httpapi.StateNotConnected}
		if j := match[i]; j >= 0 {
			used[j] = true
			line = senderLine(senders.Senders[j], senders.CurrentLSN, p.Node)
			line.Node = reg.Address
			if rcv != nil && rcv.SenderHost != "" {
				line.Upstream = rcv.SenderHost
			}
		} else {
			line.Detail = notConnected(p.Node, rcv, receiverErrs[i], snap.Status, reg.Address)
			if rcv != nil {
				line.Upstream = rcv.SenderHost
				line.ReplayLSN = rcv.ReplayLSN
				line.LagBytes = lagBytes(senders.CurrentLSN, rcv.ReplayLSN)
			}
		}
		rep.Standbys = append(rep.Standbys, line)
	}
	for j, s := range senders.Senders {
		if !used[j] {
			rep.Others = append(rep.Others, senderLine(s, senders.CurrentLSN, p.Node))
		}
	}
	return rep, nil
}

func sortedByAddress(regs []cluster.Registration) []cluster.Registration {
	byAddr := map[string]cluster.Registration{}
	addrs := make([]string, len(regs))
	for i, reg := range regs {
		byAddr[reg.Address], addrs[i] = reg, reg.Address
	}
	sortAddrs(addrs)
	out := make([]cluster.Registration, len(regs))
	for i, addr := range addrs {
		out[i] = byAddr[addr]
	}
	return out
}

// nodeDBPort is a node's database port: its agent's word, then its
// registration's, then ours (db.port should be the same everywhere).
func nodeDBPort(reg cluster.Registration, snap dcs.Snapshot, ours int) int {
	return cmp.Or(snap.Status[reg.Address].DBPort, reg.DBPort, ours)
}

// primaryQueryError says, for the operator, why the primary's senders
// could not be read; nil when they were.
func (a *Agent) primaryQueryError(p dcs.Primary, port int, s postgres.Senders, err error) error {
	name := a.cfg.Cluster
	switch {
	case errors.Is(err, postgres.ErrNoStatsPrivilege):
		return httpapi.Errorf(http.StatusForbidden,
			"db.user %s may not read the details of pg_stat_replication on the primary %s: run `GRANT pg_read_all_stats TO %s` there, or use a superuser as db.user",
			a.cfg.DB.User, p.Node, a.cfg.DB.User)
	case err != nil:
		return httpapi.Errorf(http.StatusServiceUnavailable,
			"cannot query the primary %s (port %d) from %s: %v; check that its database runs (`pgfm cluster-status %s`) and accepts connections from %s as db.user %s",
			p.Node, port, a.self, err, name, a.self, a.cfg.DB.User)
	case s.InRecovery:
		return httpapi.Errorf(http.StatusServiceUnavailable,
			"the primary record names %s (epoch %d, %s), but its database is in recovery: a failover or switchover is under way or has stalled; see `pgfm cluster-status %s`",
			p.Node, p.Epoch, p.Phase, name)
	}
	return nil
}

// senderLine is the report's line for a WAL sender of the primary.
func senderLine(s postgres.Sender, current cluster.LSN, primary string) httpapi.StandbyReplication {
	line := httpapi.StandbyReplication{
		Upstream: primary, Connected: true, State: s.State, SyncState: s.SyncState,
		SentLSN: s.SentLSN, WriteLSN: s.WriteLSN, FlushLSN: s.FlushLSN, ReplayLSN: s.ReplayLSN,
		LagBytes: lagBytes(current, s.ReplayLSN), Slot: s.Slot,
		PID: s.PID, ClientAddr: s.ClientAddr, ApplicationName: s.ApplicationName,
	}
	if s.ReplayLag != nil {
		sec := s.ReplayLag.Seconds()
		line.LagSeconds = &sec
	}
	return line
}

// lagBytes is current minus replayed, never below 0 (the two were read at
// slightly different times); nil when either is unknown.
func lagBytes(current, replayed cluster.LSN) *int64 {
	if current == 0 || replayed == 0 {
		return nil
	}
	d := int64(0)
	if current > replayed {
		d = int64(current - replayed)
	}
	return &d
}

// notConnected says why the primary has no WAL sender for the standby at
// addr, from its own receiver (nil when rerr says why it was not read)
// and what its agent published.
func notConnected(primary string, rcv *postgres.Receiver, rerr error, status map[string]cluster.MemberStatus, addr string) string {
	var why []string
	switch {
	case rerr != nil:
		why = append(why, "its database does not answer: "+rerr.Error())
	case !rcv.InRecovery:
		why = append(why, "its database is not in recovery: it is no standby")
	case rcv.Status == "":
		why = append(why, "it runs no WAL receiver: see its server log (primary_conninfo, pg_hba.conf on the primary)")
	case rcv.SenderHost != "" && rcv.SenderHost != primary:
		why = append(why, fmt.Sprintf("its WAL receiver is %s from %s, not from the primary %s", rcv.Status, rcv.SenderHost, primary))
	default:
		why = append(why, "its WAL receiver is "+rcv.Status)
	}
	switch st, ok := status[addr]; {
	case !ok:
		why = append(why, "its agent is down")
	case st.Type == cluster.Idle:
		why = append(why, "its agent is idle: "+st.IdleReason)
	}
	return strings.Join(why, "; ")
}
