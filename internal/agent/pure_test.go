package agent

import (
	"errors"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/httpapi"
)

func TestDescribe(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	started := now.Add(-time.Hour)
	dbNode := config.Config{
		DB:               config.DB{Port: 5433},
		Promotable:       true,
		PriorityStandbys: []netip.Addr{netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("2001:db8::2")},
	}
	witness := dbNode
	witness.IsWitness = true
	notPromotable := dbNode
	notPromotable.Promotable = false

	up := cluster.DBObservation{Up: true, CurrentLSN: 0x3000060}
	standby := cluster.DBObservation{Up: true, InRecovery: true, ReplayLSN: 0x3000060}
	down := cluster.DBObservation{Error: "connection refused"}

	cases := []struct {
		name       string
		cfg        config.Config
		obs        cluster.DBObservation
		typ        cluster.Type
		promotable bool
		dbPort     int
		reason     string // substring of IdleReason; "" means IdleReason must be empty
	}{
		{"primary", dbNode, up, cluster.Primary, true, 5433, ""},
		{"standby", dbNode, standby, cluster.Standby, true, 5433, ""},
		{"database down", dbNode, down, cluster.Idle, true, 5433, "connection refused"},
		{"witness", witness, cluster.DBObservation{}, cluster.Witness, false, 0, ""},
		{"witness whatever the observation", witness, up, cluster.Witness, false, 0, ""},
		{"not promotable", notPromotable, standby, cluster.Standby, false, 5433, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := describe(tc.cfg, "10.0.0.1", "10.0.0.1:7800", "http://10.0.0.1:7809", tc.obs, now, started)
			if st.Type != tc.typ {
				t.Errorf("Type = %s, want %s", st.Type, tc.typ)
			}
			if st.Promotable != tc.promotable {
				t.Errorf("Promotable = %v, want %v", st.Promotable, tc.promotable)
			}
			if st.DBPort != tc.dbPort {
				t.Errorf("DBPort = %d, want %d", st.DBPort, tc.dbPort)
			}
			switch {
			case tc.reason == "" && st.IdleReason != "":
				t.Errorf("IdleReason = %q, want none", st.IdleReason)
			case !strings.Contains(st.IdleReason, tc.reason):
				t.Errorf("IdleReason = %q, want it to contain %q", st.IdleReason, tc.reason)
			}
			if st.Address != "10.0.0.1" || st.BindAddr != "10.0.0.1:7800" || st.AdminURL != "http://10.0.0.1:7809" {
				t.Errorf("identity = %q %q %q", st.Address, st.BindAddr, st.AdminURL)
			}
			if st.DB != tc.obs {
				t.Errorf("DB = %+v, want the observation %+v", st.DB, tc.obs)
			}
			if !st.ObservedAt.Equal(now) || !st.StartedAt.Equal(started) {
				t.Errorf("times = %v %v", st.ObservedAt, st.StartedAt)
			}
			if want := []string{"10.0.0.3", "2001:db8::2"}; !reflect.DeepEqual(st.Priority, want) {
				t.Errorf("Priority = %q, want %q", st.Priority, want)
			}
		})
	}
}

// pub makes a NodeReport whose agent published st.
func pub(addr string, typ cluster.Type, agent cluster.AgentState, promotable bool, priority ...string) cluster.NodeReport {
	return cluster.NodeReport{
		Address: addr, Type: typ, Agent: agent,
		Published: &cluster.MemberStatus{Address: addr, Type: typ, Promotable: promotable, Priority: priority},
	}
}

func TestFailoverPriority(t *testing.T) {
	up := cluster.AgentUp
	cases := []struct {
		name  string
		nodes []cluster.NodeReport
		want  []string
		set   map[string]int
	}{
		{"empty", nil, []string{}, nil},
		{
			"no priority list: numeric address order",
			[]cluster.NodeReport{pub("10.0.0.1", cluster.Primary, up, true), pub("10.0.0.10", cluster.Standby, up, true), pub("10.0.0.2", cluster.Standby, up, true)},
			[]string{"10.0.0.2", "10.0.0.10"},
			nil,
		},
		{
			"primary's priority first, unknown and duplicate entries skipped",
			[]cluster.NodeReport{
				pub("10.0.0.2", cluster.Standby, up, true),
				pub("10.0.0.1", cluster.Primary, up, true, "10.0.0.10", "10.0.0.99", "10.0.0.10", "10.0.0.3"),
				pub("10.0.0.3", cluster.Standby, up, true),
				pub("10.0.0.10", cluster.Standby, up, true),
			},
			[]string{"10.0.0.10", "10.0.0.3", "10.0.0.2"},
			nil,
		},
		{
			"not promotable, idle, witness and stopped agents are no candidates",
			[]cluster.NodeReport{
				pub("10.0.0.1", cluster.Primary, up, true, "10.0.0.4", "10.0.0.5"),
				pub("10.0.0.2", cluster.Standby, up, true),
				pub("10.0.0.3", cluster.Standby, up, false),
				pub("10.0.0.4", cluster.Idle, cluster.AgentIdle, true),
				pub("10.0.0.5", cluster.Witness, up, false),
				{Address: "10.0.0.6", Type: cluster.Standby, Agent: cluster.AgentDown}, // type from the probe
			},
			[]string{"10.0.0.2"},
			nil,
		},
		{
			"set-priority first, 0 leaves out, above 0 brings in a non-promotable standby",
			[]cluster.NodeReport{
				pub("10.0.0.1", cluster.Primary, up, true, "10.0.0.2"),
				pub("10.0.0.2", cluster.Standby, up, true),
				pub("10.0.0.3", cluster.Standby, up, false),
				pub("10.0.0.4", cluster.Standby, up, true),
				pub("10.0.0.5", cluster.Standby, up, true),
				pub("10.0.0.6", cluster.Standby, up, true),
			},
			[]string{"10.0.0.5", "10.0.0.3", "10.0.0.2", "10.0.0.6"},
			map[string]int{"10.0.0.3": 2, "10.0.0.5": 1, "10.0.0.4": 0},
		},
		{
			"primary without a running agent gives no order",
			[]cluster.NodeReport{
				{Address: "10.0.0.1", Type: cluster.Primary, Agent: cluster.AgentDown},
				pub("10.0.0.3", cluster.Standby, up, true),
				pub("10.0.0.2", cluster.Standby, up, true),
			},
			[]string{"10.0.0.2", "10.0.0.3"},
			nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := failoverPriority(tc.nodes, tc.set)
			if got == nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestSettleDB(t *testing.T) {
	probeUp := cluster.DBObservation{Up: true}
	probeStandby := cluster.DBObservation{Up: true, InRecovery: true}
	published := func(up bool) *cluster.MemberStatus {
		return &cluster.MemberStatus{Type: cluster.Standby, DB: cluster.DBObservation{Up: up, InRecovery: true}}
	}
	cases := []struct {
		name string
		in   cluster.NodeReport
		typ  cluster.Type
		db   cluster.DBState
	}{
		{"witness untouched", cluster.NodeReport{Type: cluster.Witness, DB: cluster.DBNone, Probe: probeUp}, cluster.Witness, cluster.DBNone},
		{"published up wins over a failed probe", cluster.NodeReport{Type: cluster.Standby, Published: published(true)}, cluster.Standby, cluster.DBUp},
		{"published down wins over a good probe", cluster.NodeReport{Type: cluster.Standby, Published: published(false), Probe: probeStandby}, cluster.Standby, cluster.DBDown},
		{"agent down, probe says standby", cluster.NodeReport{Type: "Unknown", Probe: probeStandby}, cluster.Standby, cluster.DBUp},
		{"agent down, probe says primary", cluster.NodeReport{Type: "Unknown", Probe: probeUp}, cluster.Primary, cluster.DBUp},
		{"agent down, probe fails", cluster.NodeReport{Type: "Unknown", Probe: cluster.DBObservation{Error: "x"}}, "Unknown", cluster.DBDown},
		{"published type kept even when the probe disagrees", cluster.NodeReport{Type: cluster.Standby, Published: published(true), Probe: probeUp}, cluster.Standby, cluster.DBUp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.in
			settleDB(&n)
			if n.Type != tc.typ || n.DB != tc.db {
				t.Errorf("Type, DB = %s, %s; want %s, %s", n.Type, n.DB, tc.typ, tc.db)
			}
		})
	}
}

func TestParseNodeAddress(t *testing.T) {
	cases := []struct {
		in, want string // want "" means rejected
	}{
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1:7800", "10.0.0.1"},
		{"2001:db8::12", "2001:db8::12"},
		{"2001:DB8:0::12", "2001:db8::12"},
		{"::1", "::1"},
		{"[::1]:7800", "::1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"", ""},
		{"node1", ""},
		{"node1:7800", ""},
		{"10.0.0.256", ""},
		{"10.0.0.1:", ""},
		{"[::1]", ""},
		{"http://10.0.0.1:7800", ""},
		{" 10.0.0.1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseNodeAddress(tc.in)
			if tc.want == "" {
				var he *httpapi.Error
				if err == nil || !errors.As(err, &he) || he.Status != http.StatusBadRequest || !strings.Contains(err.Error(), "is not an IP address") {
					t.Fatalf("parseNodeAddress(%q) = %q, %v; want a 400 saying it is not an IP address", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseNodeAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestSortAddrs(t *testing.T) {
	cases := []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"127.0.0.10", "127.0.0.2", "127.0.0.1"}, []string{"127.0.0.1", "127.0.0.2", "127.0.0.10"}},
		{[]string{"10.0.0.9", "9.0.0.10", "10.0.0.10"}, []string{"9.0.0.10", "10.0.0.9", "10.0.0.10"}},
		{[]string{"2001:db8::10", "10.0.0.1", "2001:db8::9"}, []string{"10.0.0.1", "2001:db8::9", "2001:db8::10"}},
	}
	for _, tc := range cases {
		got := append([]string(nil), tc.in...)
		sortAddrs(got)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("sortAddrs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVIPMismatch(t *testing.T) {
	st := func(vip string) cluster.MemberStatus { return cluster.MemberStatus{VIP: vip} }
	for _, c := range []struct {
		name     string
		statuses map[string]cluster.MemberStatus
		want     string // "" for no message
	}{
		{"no virtual IP anywhere", map[string]cluster.MemberStatus{"10.0.0.1": st(""), "10.0.0.2": st("")}, ""},
		{"one address everywhere; the witness has none", map[string]cluster.MemberStatus{
			"10.0.0.1": st("10.0.0.100"), "10.0.0.2": st("10.0.0.100"), "10.0.0.3": st("")}, ""},
		{"two addresses", map[string]cluster.MemberStatus{
			"10.0.0.1": st("10.0.0.100"), "10.0.0.2": st("10.0.1.100"), "10.0.0.3": st("10.0.0.100")},
			"virtual.ip differs between nodes (10.0.0.100 on 10.0.0.1, 10.0.0.3; 10.0.1.100 on 10.0.0.2) although virtual.ip.single=true"},
	} {
		got := strings.Join(vipMismatch(c.statuses), "\n")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
