package consensus

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
)

// A node that must not start a new cluster says so, and why, before it
// starts anything: a witness, a standby and a node whose database is down
// with nobody listed in .nodes.
func TestBootstrapRefusals(t *testing.T) {
	for _, c := range []struct {
		name    string
		witness bool
		db      cluster.DBObservation
		want    string
	}{
		{"witness", true, cluster.DBObservation{}, "a witness cannot start a new cluster"},
		{"standby", false, cluster.DBObservation{Up: true, InRecovery: true}, "cannot start a new cluster on a standby"},
		{"database down", false, cluster.DBObservation{Error: "connection refused"}, "the local database at 127.0.0.1:5432 is not reachable (connection refused)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Config{Cluster: "prod", StateDir: t.TempDir(), NodesFile: "/etc/pgfm/prod.nodes", IsWitness: c.witness,
				BindAddress: netip.MustParseAddrPort("127.0.0.1:7800")}
			cfg.DB.Port = 5432
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			j, err := Start(ctx, Node{Config: cfg, Log: slog.New(slog.DiscardHandler), Self: "127.0.0.1", Bind: "127.0.0.1:7800",
				LocalDB: func(context.Context) cluster.DBObservation { return c.db }})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start = %v; want a refusal saying %q", err, c.want)
			}
			if j.Member != nil || j.Store != nil {
				t.Fatalf("a refused start left %+v", j)
			}
		})
	}
}

// An external etcd that cannot be used as configured is a refusal naming
// the keys to check, not a retry.
func TestExternalRefusedOnBadTLSFiles(t *testing.T) {
	cfg := config.Config{Cluster: "prod", StateDir: t.TempDir(), PropertiesFile: "/etc/pgfm/prod.properties",
		BindAddress: netip.MustParseAddrPort("127.0.0.1:7800")}
	cfg.DCS.Endpoints = []string{"https://127.0.0.1:2379"}
	cfg.DCS.CACert = t.TempDir() + "/missing-ca.pem"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Start(ctx, Node{Config: cfg, Log: slog.New(slog.DiscardHandler), Self: "127.0.0.1", Bind: "127.0.0.1:7800",
		LocalDB: func(context.Context) cluster.DBObservation { return cluster.DBObservation{} }})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "dcs.cacert") {
		t.Fatalf("Start = %v; want a refusal naming the TLS settings", err)
	}
}
