package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdClient connects to the node's embedded etcd member through its unix
// socket in state.dir (reachable from the test's namespace: it is a file).
func (n *Node) etcdClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{"unix://" + filepath.Join(n.StateDir, "etcd.sock")},
		DialTimeout: 3 * time.Second,
	})
}

// EtcdLeader reports whether the node's etcd member leads its cluster.
func (n *Node) EtcdLeader(ctx context.Context) (bool, error) {
	cli, err := n.etcdClient()
	if err != nil {
		return false, err
	}
	defer cli.Close()
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	if err != nil {
		return false, fmt.Errorf("etcd status of %s: %w", n.Name, err)
	}
	return st.Leader == st.Header.MemberId, nil
}

// MoveEtcdLeader hands the etcd leadership to to's member (asked of the
// current leader, as etcd requires) and returns once to reports leading.
func (c *NetCluster) MoveEtcdLeader(ctx context.Context, to *NetNode) error {
	tc, err := to.etcdClient()
	if err != nil {
		return err
	}
	defer tc.Close()
	st, err := tc.Status(ctx, tc.Endpoints()[0])
	if err != nil {
		return fmt.Errorf("etcd status of %s: %w", to.Name, err)
	}
	target := st.Header.MemberId
	for _, n := range c.Nodes {
		if st.Leader == target {
			return nil
		}
		leads, err := n.EtcdLeader(ctx)
		if err != nil || !leads {
			continue
		}
		cli, err := n.etcdClient()
		if err != nil {
			return err
		}
		_, err = cli.MoveLeader(ctx, target)
		cli.Close()
		if err != nil {
			return fmt.Errorf("etcd move-leader from %s to %s: %w", n.Name, to.Name, err)
		}
		if st, err = tc.Status(ctx, tc.Endpoints()[0]); err != nil {
			return fmt.Errorf("etcd status of %s: %w", to.Name, err)
		}
	}
	if st.Leader != target {
		return fmt.Errorf("etcd leader is member %x, not %s's (%x)", st.Leader, to.Name, target)
	}
	return nil
}

// PutEtcdLeaderOn makes n's member the etcd leader, retrying for a while
// (a leader hand-off by the agents may be under way), or fails the test.
func (c *NetCluster) PutEtcdLeaderOn(t testing.TB, n *NetNode) {
	t.Helper()
	WaitFor(t, 20*time.Second, "the etcd leader on "+n.Name+"'s host", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := c.MoveEtcdLeader(ctx, n)
		return err == nil, err
	})
}
