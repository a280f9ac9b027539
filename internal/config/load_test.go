package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgfm/pgfm/internal/secret"
)

// baseKeys is a minimal valid database node; conf edits it so that line
// numbers stay predictable: db.user is line 1, ..., db.data.dir line 5, and
// added keys follow from line 6.
var baseKeys = [][2]string{
	{"db.user", "postgres"},
	{"db.port", "5432"},
	{"db.database", "postgres"},
	{"bind.address", "192.0.2.10:7800"},
	{"db.data.dir", "/var/lib/postgresql/17/main"},
}

// conf returns the base file with edits: "key=value" replaces the key in
// place or appends it; "-key" deletes the line, leaving it blank.
func conf(edits ...string) string {
	lines := make([]string, len(baseKeys))
	for i, kv := range baseKeys {
		lines[i] = kv[0] + "=" + kv[1]
	}
	for _, e := range edits {
		if k, ok := strings.CutPrefix(e, "-"); ok {
			for i, kv := range baseKeys {
				if kv[0] == k {
					lines[i] = ""
				}
			}
			continue
		}
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, kv := range baseKeys {
			if kv[0] == k {
				lines[i], replaced = e, true
			}
		}
		if !replaced {
			lines = append(lines, e)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// loadString writes props (and nodes, if not "") as cluster "c" and loads it.
func loadString(t *testing.T, props, nodes string) (Config, []Warning, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.properties"), []byte(props), 0o644); err != nil {
		t.Fatal(err)
	}
	if nodes != "" {
		if err := os.WriteFile(filepath.Join(dir, "c.nodes"), []byte(nodes), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Load(dir, "c")
}

func TestLoadDefaults(t *testing.T) {
	c, warns, err := loadString(t, conf(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	want := Config{
		Cluster:        "c",
		Dir:            c.Dir,
		PropertiesFile: filepath.Join(c.Dir, "c.properties"),
		NodesFile:      filepath.Join(c.Dir, "c.nodes"),
		DB: DB{User: "postgres", Port: 5432, Database: "postgres", ServiceOwner: "postgres",
			DataDir: "/var/lib/postgresql/17/main", ConfigDir: "/var/lib/postgresql/17/main", SSLMode: "disable"},
		BindAddress:             netip.MustParseAddrPort("192.0.2.10:7800"),
		AdminPort:               7809,
		EnableStopCluster:       true,
		LocalPeriod:             time.Second,
		LocalTimeout:            2 * time.Second,
		LocalTimeoutFinal:       2 * time.Second,
		RemoteTimeout:           2 * time.Second,
		NodeTimeout:             5 * time.Second,
		ElectionTimeout:         time.Second,
		VirtualIPSingle:         true,
		CheckVIPBeforePromotion: true,
		CheckVIPTimeout:         60 * time.Second,
		LockDir:                 "/run/lock/pgfm",
		LogDir:                  "/var/log/pgfm",
		StateDir:                "/var/lib/pgfm/c",
		Promotable:              true,

		AutoFailover:         true,
		AutoReconfigure:      true,
		MaxFailoverLag:       16 << 20,
		StopIsolatedPrimary:  true,
		StopFailedPrimary:    true,
		RecoveryCheckPeriod:  200 * time.Millisecond,
		SyncMode:             "off",
		SyncNodeCount:        1,
		CheckNumSyncPeriod:   30 * time.Second,
		ScriptTimeout:        30 * time.Second,
		FromEmail:            "pgfm@%h",
		NotificationLevel:    "INFO",
		AdminMaxConnections:  64,
		EncryptAgentMessages: true,
	}
	want.DB.PasswordRetry = 10 * time.Second
	want.TLS.ClusterKeyFile = filepath.Join(want.Dir, "c.key")
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

// loadCases covers every validation message: errors and warnings are
// substrings that must each appear (file:line: key: problem; fix).
var loadCases = []struct {
	name   string
	props  string
	errors []string
	warns  []string // substrings; the number of warnings must match
	check  func(t *testing.T, c Config)
}{
	// Required keys.
	{name: "missing db.user", props: conf("-db.user"), errors: []string{
		"c.properties: db.user: missing; it is required on every node; add db.user=... to ", "c.properties, e.g. db.user=postgres"}},
	{name: "missing db.port", props: conf("-db.port"), errors: []string{"db.port: missing", "add db.port=... to "}},
	{name: "missing db.database", props: conf("-db.database"), errors: []string{"db.database: missing", "add db.database=... to "}},
	{name: "missing bind.address", props: conf("-bind.address"), errors: []string{"bind.address: missing", "add bind.address=... to ", "e.g. bind.address=192.0.2.10:7800"}},
	{name: "missing db.data.dir on database node", props: conf("-db.data.dir"), errors: []string{
		"c.properties: db.data.dir: missing; it is required on database nodes (is.witness=false); add db.data.dir=... to "}},
	{name: "witness needs no db.data.dir", props: conf("-db.data.dir", "is.witness=true"), check: func(t *testing.T, c Config) {
		if !c.IsWitness || c.DB.DataDir != "" || c.DB.ConfigDir != "" {
			t.Errorf("witness: %+v", c.DB)
		}
	}},
	{name: "witness still needs db.user and db.port", props: conf("-db.user", "-db.port", "-db.data.dir", "is.witness=true"),
		errors: []string{"db.user: missing; it is required on every node", "db.port: missing"}},
	{name: "empty required value", props: conf("db.user="), errors: []string{
		"c.properties:1: db.user: empty; it is required on every node; give it a value, e.g. db.user=postgres"}},
	{name: "empty optional value takes the default", props: conf("admin.port=", "local.period=  "), check: func(t *testing.T, c Config) {
		if c.AdminPort != 7809 || c.LocalPeriod != time.Second {
			t.Errorf("admin.port %d local.period %v", c.AdminPort, c.LocalPeriod)
		}
	}},

	// Numbers and ports.
	{name: "port not a number", props: conf("db.port=54x2"), errors: []string{
		`c.properties:2: db.port: "54x2" is not a port number; use a whole number from 1 to 65535`}},
	{name: "port too large", props: conf("db.port=70000"), errors: []string{"c.properties:2: db.port: port 70000 is outside 1..65535; use a port number in that range"}},
	{name: "port zero", props: conf("admin.port=0"), errors: []string{"c.properties:6: admin.port: port 0 is outside 1..65535"}},
	{name: "port with sign", props: conf("db.port=+5432"), errors: []string{`db.port: "+5432" is not a port number`}},
	{name: "port trailing blank is fine", props: conf("db.port=5433  "), check: func(t *testing.T, c Config) {
		if c.DB.Port != 5433 {
			t.Errorf("port %d", c.DB.Port)
		}
	}},
	{name: "minimum.standbys negative", props: conf("minimum.standbys=-1"), errors: []string{"c.properties:6: minimum.standbys: -1 is negative; use 0 or more"}},
	{name: "minimum.standbys not a number", props: conf("minimum.standbys=two"), errors: []string{`minimum.standbys: "two" is not a whole number; use 0 or more`}},
	{name: "minimum.standbys set", props: conf("minimum.standbys=2"), check: func(t *testing.T, c Config) {
		if c.MinimumStandbys != 2 {
			t.Errorf("got %d", c.MinimumStandbys)
		}
	}},

	// Booleans.
	{name: "bad boolean", props: conf("is.witness=yes"), errors: []string{`c.properties:6: is.witness: "yes" is not a boolean; use true or false`}},
	{name: "booleans ignore case", props: conf("auto.allow.hosts=TRUE", "stable.nodes.file=True", "enable.stop.cluster=FALSE", "promotable=false"),
		check: func(t *testing.T, c Config) {
			if !c.AutoAllowHosts || !c.StableNodesFile || c.EnableStopCluster || c.Promotable {
				t.Errorf("%+v", c)
			}
		}},

	// Durations.
	{name: "duration zero", props: conf("local.period=0"), errors: []string{"c.properties:6: local.period: 0 is not more than 0; use a number of seconds greater than 0"}},
	{name: "duration tiny rounds to zero", props: conf("local.period=0.0000000001"), errors: []string{"local.period: 0.0000000001 is not more than 0"}},
	{name: "duration negative", props: conf("local.timeout=-1"), errors: []string{"local.timeout: -1 is negative; use a number of seconds greater than 0"}},
	{name: "duration with unit", props: conf("remote.timeout=5s"), errors: []string{`remote.timeout: "5s" is not a number of seconds; write plain seconds without a unit, e.g. 5 or 0.5`}},
	{name: "duration exponent", props: conf("remote.timeout=1e3"), errors: []string{`"1e3" is not a number of seconds`}},
	{name: "duration too long", props: conf("local.timeout.final=99999999999999999999"), errors: []string{"local.timeout.final: 99999999999999999999 seconds is too long"}},
	{name: "durations with decimals", props: conf("local.period=0.5", "local.timeout=1.25", "local.timeout.final=3", "remote.timeout=0.1", "node.timeout=2.5"),
		warns: []string{"node.timeout: 2.5 seconds leaves a primary"},
		check: func(t *testing.T, c Config) {
			got := []time.Duration{c.LocalPeriod, c.LocalTimeout, c.LocalTimeoutFinal, c.RemoteTimeout, c.NodeTimeout}
			want := []time.Duration{500 * time.Millisecond, 1250 * time.Millisecond, 3 * time.Second, 100 * time.Millisecond, 2500 * time.Millisecond}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v want %v", got, want)
			}
		}},
	{name: "node.timeout below lease minimum", props: conf("node.timeout=1.5"), errors: []string{
		"c.properties:6: node.timeout: 1.5 seconds is too short; use 2 or more: it is the consensus lease TTL, which etcd cannot make shorter than 1.5 × its election timeout (dcs.election.timeout=1), in whole seconds"}},
	{name: "node.timeout 2 is accepted, with a warning that an etcd election can outlast it", props: conf("node.timeout=2"), warns: []string{
		"c.properties:6: node.timeout: 2 seconds leaves a primary 1.1s of lease after its last renewal, less than the 2s an etcd leader election can take with dcs.election.timeout=1: " +
			"when the host of the etcd leader (a standby or a witness) fails, the primary may fence itself and cause a failover; use node.timeout=4 or more, or a smaller dcs.election.timeout"}},
	{name: "node.timeout 3 with a 0.5 s election rides it out", props: conf("node.timeout=3", "dcs.election.timeout=0.5")},

	// bind.address.
	{name: "bind hostname", props: conf("bind.address=db1.example.com:7800"), errors: []string{
		`c.properties:4: bind.address: "db1.example.com" is a host name, not an IP address`, "e.g. 192.0.2.10:7800 or [2001:db8::10]:7800"}},
	{name: "bind missing port", props: conf("bind.address=192.0.2.10"), errors: []string{"c.properties:4: bind.address: 192.0.2.10 has no port; add one: 192.0.2.10:7800"}},
	{name: "bind ipv6 without brackets", props: conf("bind.address=2001:db8::10"), errors: []string{"bind.address: 2001:db8::10 has no port; put IPv6 addresses in brackets and add a port: [2001:db8::10]:7800"}},
	{name: "bind bad port", props: conf("bind.address=192.0.2.10:http"), errors: []string{`bind.address: port "http" is not a number in 1..65535`}},
	{name: "bind garbage", props: conf("bind.address=:::"), errors: []string{`bind.address: ":::" is not an IP:port address`}},
	{name: "bind unspecified v4", props: conf("bind.address=0.0.0.0:7800"), errors: []string{
		"c.properties:4: bind.address: 0.0.0.0 is the unspecified address: other nodes need an address they can reach; use this host's own IP address"}},
	{name: "bind unspecified v6", props: conf("bind.address=[::]:7800"), errors: []string{"bind.address: :: is the unspecified address"}},
	{name: "bind link-local", props: conf("bind.address=[fe80::1]:7800"), errors: []string{
		"c.properties:4: bind.address: fe80::1 is a link-local IPv6 address (fe80::/10): other nodes cannot reach it without a zone index",
		"use a global or unique-local (fd00::/8) address of this host"}},
	{name: "bind link-local with zone", props: conf("bind.address=[fe80::1%eth0]:7800"), errors: []string{"fe80::1%eth0 is a link-local IPv6 address"}},
	{name: "bind zone", props: conf("bind.address=[fd00::1%eth0]:7800"), errors: []string{
		"bind.address: fd00::1%eth0 has a zone index (%eth0), which only means something on this host, so other nodes cannot use it"}},
	{name: "bind multicast", props: conf("bind.address=224.0.0.1:7800"), errors: []string{"224.0.0.1 is a multicast address"}},
	{name: "bind port zero", props: conf("bind.address=192.0.2.10:0"), errors: []string{"bind.address: port 0 is not a usable port"}},
	{name: "bind ipv6 global and unique-local", props: conf("bind.address=[fd12:3456::10]:7800"), check: func(t *testing.T, c Config) {
		if c.BindAddress != netip.MustParseAddrPort("[fd12:3456::10]:7800") {
			t.Errorf("got %v", c.BindAddress)
		}
	}},
	{name: "admin.port equals bind port", props: conf("admin.port=7800"), errors: []string{
		"c.properties:6: admin.port: 7800 is also bind.address's port (192.0.2.10:7800)", "use another admin.port, e.g. 7809"}},
	{name: "default admin.port equals bind port", props: conf("bind.address=192.0.2.10:7809"), errors: []string{
		"c.properties: admin.port: 7809 is also bind.address's port"}},

	// Paths.
	{name: "relative db.data.dir", props: conf("db.data.dir=data"), errors: []string{
		`c.properties:5: db.data.dir: "data" is not an absolute path; write the full path starting with /`}},
	{name: "relative db.bin", props: conf("db.bin=bin"), errors: []string{`c.properties:6: db.bin: "bin" is not an absolute path`}},
	{name: "relative db.config.dir", props: conf("db.config.dir=./conf"), errors: []string{`db.config.dir: "./conf" is not an absolute path`}},
	{name: "relative lock.dir", props: conf("lock.dir=lock"), errors: []string{`lock.dir: "lock" is not an absolute path`}},
	{name: "relative log.dir", props: conf("log.dir=~/log"), errors: []string{`log.dir: "~/log" is not an absolute path`}},
	{name: "relative state.dir", props: conf("state.dir=state"), errors: []string{`state.dir: "state" is not an absolute path`}},
	{name: "paths set", props: conf("db.bin=/usr/lib/postgresql/17/bin", "db.config.dir=/etc/postgresql/17/main", "state.dir=/srv/pgfm"),
		check: func(t *testing.T, c Config) {
			if c.DB.Bin != "/usr/lib/postgresql/17/bin" || c.DB.ConfigDir != "/etc/postgresql/17/main" || c.StateDir != "/srv/pgfm" {
				t.Errorf("%+v", c)
			}
		}},

	// Enumerations and lists.
	{name: "bad synchronous mode", props: conf("synchronous.mode=remote_apply", "synchronous.node.count=0"), errors: []string{
		`c.properties:6: synchronous.mode: "remote_apply" is not a synchronous mode; use off (asynchronous), on (synchronous while a synchronous standby is healthy) or strict (writes wait when none is)`,
		`c.properties:7: synchronous.node.count: 0 is less than 1; use 1 or more`}},
	{name: "bad sslmode", props: conf("jdbc.sslmode=prefer"), errors: []string{
		`c.properties:6: jdbc.sslmode: "prefer" is not a valid SSL mode; use disable, require, verify-ca or verify-full`}},
	{name: "sslmode verify-full", props: conf("jdbc.sslmode=verify-full"), check: func(t *testing.T, c Config) {
		if c.DB.SSLMode != "verify-full" {
			t.Errorf("got %q", c.DB.SSLMode)
		}
	}},
	{name: "priority.standbys", props: conf("priority.standbys=192.0.2.11  192.0.2.12:7800 [2001:db8::13]:7800 2001:db8::14"),
		check: func(t *testing.T, c Config) {
			want := []netip.Addr{netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12"),
				netip.MustParseAddr("2001:db8::13"), netip.MustParseAddr("2001:db8::14")}
			if !reflect.DeepEqual(c.PriorityStandbys, want) {
				t.Errorf("got %v", c.PriorityStandbys)
			}
		}},
	{name: "bad priority.standbys", props: conf("priority.standbys=192.0.2.11 db2"), errors: []string{
		`c.properties:6: priority.standbys: "db2" is not an IP address; list the standbys' IP addresses separated by spaces`}},

	// Unknown keys.
	{name: "unknown key with typo", props: conf("bind.adress=192.0.2.10:7800"), errors: []string{
		"c.properties:6: bind.adress: unknown property; did you mean bind.address?", "correct or remove it"}},
	{name: "unknown key camel case", props: conf("nodeTimeout=5"), errors: []string{"nodeTimeout: unknown property; did you mean node.timeout?"}},
	{name: "unknown key upper case", props: conf("DB.USER=x"), errors: []string{"DB.USER: unknown property; did you mean db.user?"}},
	{name: "unknown key prefers current name", props: conf("pingserverip=8.8.8.8"), errors: []string{"did you mean ping.server.ip?"}},
	{name: "unknown key near an alias", props: conf("virtualIp.netmsk=24"), errors: []string{"did you mean virtualIp.netmask?"}},
	{name: "unknown key far from all", props: conf("cluster.name=prod"), errors: []string{
		"c.properties:6: cluster.name: unknown property; correct or remove it (pgfm, like EFM 5.1 and later, refuses unknown names"}},
	{name: "value without key", props: conf("=5"), errors: []string{"c.properties:6: a value without a key"}},

	// Not implemented, not applicable.
	{name: "not implemented", props: conf("release.vip.pre.wait=2", "script.custom.monitor=/bin/true"), warns: []string{
		"c.properties:6: release.vip.pre.wait: release.vip.pre.wait is not implemented yet in pgfm; it is ignored",
		"c.properties:7: script.custom.monitor: script.custom.monitor is not implemented yet in pgfm; it is ignored"}},
	{name: "not implemented but blank", props: conf("release.vip.pre.wait=", "script.custom.monitor=  ")},
	{name: "EFM's encrypted password", props: conf("db.password.encrypted=516b36fb8031da17cfbc010f7d09359c"), warns: []string{
		"c.properties:6: db.password.encrypted: this is EFM's encrypted form, which pgfm cannot read, so it is ignored and the agent connects " +
			"without a password (~/.pgpass of the agent's user still applies); run `pgfm encrypt c` and replace the value with the one it prints"},
		check: func(t *testing.T, c Config) {
			if c.DB.Password != "" {
				t.Errorf("password %q", c.DB.Password)
			}
		}},
	{name: "does not apply", props: conf("jvm.options=-Xmx128m", "pid.dir=/run/efm", "jgroups.timeout=1000"), warns: []string{
		"c.properties:6: jvm.options: jvm.options does not apply to pgfm (pgfm is a Go program: there is no JVM); remove it",
		"c.properties:7: pid.dir: pid.dir does not apply to pgfm (systemd manages the process, so there is no pid file); remove it",
		"c.properties:8: jgroups.timeout: jgroups.timeout does not apply to pgfm (replaced by node.timeout, in seconds); remove it"}},

	// Aliases.
	{name: "alias of supported key", props: conf("-db.data.dir", "db.recovery.dir=/pg/data"),
		warns: []string{"c.properties:6: db.recovery.dir: db.recovery.dir is EFM's older name for db.data.dir; rename it"},
		check: func(t *testing.T, c Config) {
			if c.DB.DataDir != "/pg/data" || c.DB.ConfigDir != "/pg/data" {
				t.Errorf("%+v", c.DB)
			}
		}},
	{name: "alias value is validated under the alias name", props: conf("-db.data.dir", "db.recovery.conf.dir=data"),
		errors: []string{`c.properties:6: db.recovery.conf.dir: "data" is not an absolute path`},
		warns:  []string{"db.recovery.conf.dir is EFM's older name for db.data.dir; rename it"}},
	{name: "current key wins over alias", props: conf("db.recovery.conf.dir=/old"),
		warns: []string{"c.properties:6: db.recovery.conf.dir: db.recovery.conf.dir is EFM's older name for db.data.dir; db.data.dir is also set (line 5) and wins; remove this line"},
		check: func(t *testing.T, c Config) {
			if c.DB.DataDir != "/var/lib/postgresql/17/main" {
				t.Errorf("got %q", c.DB.DataDir)
			}
		}},
	{name: "later alias wins over earlier alias", props: conf("-db.data.dir", "db.recovery.conf.dir=/a", "db.recovery.dir=/b"),
		warns: []string{"db.recovery.conf.dir is EFM's older name", "db.recovery.dir is EFM's older name"},
		check: func(t *testing.T, c Config) {
			if c.DB.DataDir != "/b" {
				t.Errorf("got %q", c.DB.DataDir)
			}
		}},
	{name: "alias of not implemented key", props: conf("pingServerIp=192.0.2.100"), warns: []string{
		"c.properties:6: pingServerIp: pingServerIp is EFM's older name for ping.server.ip; rename it",
		"c.properties:6: pingServerIp: ping.server.ip is not implemented yet in pgfm"}},
	{name: "EFM 4's reconfigure.sync.master", props: conf("reconfigure.sync.master=true", "reconfigure.num.sync=true",
		"reconfigure.num.sync.max=3", "check.num.sync.period=5"), warns: []string{
		"c.properties:6: reconfigure.sync.master: reconfigure.sync.master is EFM's older name for reconfigure.sync.primary; rename it"},
		check: func(t *testing.T, c Config) {
			if !c.ReconfigureSyncPrimary || !c.ReconfigureNumSync || c.ReconfigureNumSyncMax != 3 || c.CheckNumSyncPeriod != 5*time.Second {
				t.Errorf("%+v", c)
			}
		}},
	{name: "EFM's synchronous properties with synchronous.mode on", props: conf("synchronous.mode=on", "reconfigure.num.sync=true"), warns: []string{
		"c.properties:7: reconfigure.num.sync: synchronous.mode=on manages synchronous_standby_names itself, so reconfigure.num.sync is ignored"}},
	{name: "not implemented keys at their off values warn nothing", props: conf("auto.rewind=false", "auto.basebackup=FALSE",
		"backup.wal=false", "update.physical.slots.period=0", "db.reuse.connection.count=0",
		"use.replay.tiebreaker=false", "pgpool.enable=false", "release.vip.pre.wait=0"), warns: []string{}},
	{name: "not implemented keys turned on warn", props: conf("backup.wal=true", "update.physical.slots.period=5"), warns: []string{
		"c.properties:6: backup.wal: backup.wal is not implemented yet in pgfm; it is ignored",
		"c.properties:7: update.physical.slots.period: update.physical.slots.period is not implemented yet in pgfm; it is ignored"}},
	{name: "synchronous mode", props: conf("synchronous.mode=Strict", "synchronous.node.count=2"), warns: []string{},
		check: func(t *testing.T, c Config) {
			if c.SyncMode != "strict" || c.SyncNodeCount != 2 {
				t.Errorf("synchronous.mode %q, synchronous.node.count %d", c.SyncMode, c.SyncNodeCount)
			}
		}},
	{name: "auto.rewind and auto.basebackup", props: conf("auto.rewind=true", "auto.basebackup=true"), warns: []string{},
		check: func(t *testing.T, c Config) {
			if !c.AutoRewind || !c.AutoBasebackup {
				t.Errorf("auto.rewind %t, auto.basebackup %t", c.AutoRewind, c.AutoBasebackup)
			}
		}},
	{name: "virtual ip", props: conf("virtualIp=192.0.2.100", "virtual.ip.interface=eth0", "virtual.ip.prefix=24"),
		warns: []string{"c.properties:6: virtualIp: virtualIp is EFM's older name for virtual.ip; rename it"},
		check: func(t *testing.T, c Config) {
			if c.VirtualIP.String() != "192.0.2.100" || c.VirtualIPInterface != "eth0" || c.VirtualIPPrefix != 24 || !c.VirtualIPSingle || !c.CheckVIPBeforePromotion {
				t.Errorf("%+v", c)
			}
		}},
	{name: "virtual ip without interface", props: conf("virtual.ip=192.0.2.100"),
		errors: []string{"virtual.ip.interface: is needed with virtual.ip=192.0.2.100: add virtual.ip.interface=IFACE"}},
	{name: "virtual ip link-local", props: conf("virtual.ip=fe80::1", "virtual.ip.interface=eth0"),
		errors: []string{"virtual.ip: fe80::1 is a link-local IPv6 address"}},
	{name: "virtual ip prefix too long", props: conf("virtual.ip=192.0.2.100", "virtual.ip.interface=eth0", "virtual.ip.prefix=33"),
		errors: []string{"virtual.ip.prefix: 33 is too long for 192.0.2.100; use 1 to 32"}},
	{name: "virtual ip not an address", props: conf("virtual.ip=vip.example.com", "virtual.ip.interface=eth0"),
		errors: []string{`virtual.ip: "vip.example.com" is not an IP address`}},
	{name: "health check port", props: conf("primary.health.check.port=70000"),
		errors: []string{"primary.health.check.port: 70000 is not a port"}},
	{name: "all older names", props: conf("virtualIp.interface=eth0", "virtualIp.single=true", "pingServerIp=8.8.8.8",
		"pingServerCommand=/bin/ping", "stop.failed.master=false", "master.shutdown.as.failure=true", "reconfigure.sync.master=false",
		"script.master.isolated=/bin/true", "auto.resume.period=0", "stop.isolated.master=false"), warns: []string{
		"virtualIp.interface is EFM's older name for virtual.ip.interface; rename it",
		"virtualIp.single is EFM's older name for virtual.ip.single; rename it",
		"pingServerIp is EFM's older name for ping.server.ip; rename it", "ping.server.ip is not implemented",
		"pingServerCommand is EFM's older name for ping.server.command; rename it", "ping.server.command is not implemented",
		"stop.failed.master is EFM's older name for stop.failed.primary; rename it",
		"master.shutdown.as.failure is EFM's older name for primary.shutdown.as.failure; rename it",
		"reconfigure.sync.master is EFM's older name for reconfigure.sync.primary; rename it", // =false: off, as pgfm is
		"script.master.isolated is EFM's older name for script.primary.isolated; rename it",
		"auto.resume.period is EFM's older name for auto.resume.startup.period; rename it",
		"stop.isolated.master is EFM's older name for stop.isolated.primary; rename it",
	}, check: func(t *testing.T, c Config) {
		if c.StopFailedPrimary || !c.PrimaryShutdownAsFailure || c.ScriptPrimaryIsolated != "/bin/true" || c.StopIsolatedPrimary {
			t.Errorf("older names not applied: %+v", c)
		}
	}},
	{name: "auto.resume.period is startup", props: conf("auto.resume.period=30"),
		warns: []string{"auto.resume.period is EFM's older name for auto.resume.startup.period; rename it"},
		check: func(t *testing.T, c Config) {
			if c.AutoResumeStartupPeriod != 30*time.Second || c.AutoResumeFailurePeriod != 0 {
				t.Errorf("startup %v failure %v", c.AutoResumeStartupPeriod, c.AutoResumeFailurePeriod)
			}
		}},
	{name: "netmask converted", props: conf("virtualIp.netmask=255.255.255.0"), warns: []string{
		"virtualIp.netmask is EFM's older name for virtual.ip.prefix; rename it"},
		check: func(t *testing.T, c Config) {
			if c.VirtualIPPrefix != 24 {
				t.Errorf("prefix %d", c.VirtualIPPrefix)
			}
		}},
	{name: "netmask not convertible", props: conf("virtualIp.netmask=255.0.255.0"), warns: []string{
		`c.properties:6: virtualIp.netmask: virtualIp.netmask is EFM's older name for virtual.ip.prefix; "255.0.255.0" cannot be converted to it, so it is ignored; replace this line with virtual.ip.prefix=<prefix length>`}},
	{name: "alias and current both set, current after", props: conf("virtualIp=192.0.2.1", "virtual.ip=192.0.2.2", "virtual.ip.interface=eth0"), warns: []string{
		"c.properties:6: virtualIp: virtualIp is EFM's older name for virtual.ip; virtual.ip is also set (line 7) and wins"},
		check: func(t *testing.T, c Config) {
			if c.VirtualIP.String() != "192.0.2.2" {
				t.Errorf("virtual.ip %s", c.VirtualIP)
			}
		}},

	// Failover policy.
	{name: "failover booleans", props: conf("auto.failover=false", "auto.reconfigure=FALSE", "stop.isolated.primary=false",
		"stop.failed.primary=false", "primary.shutdown.as.failure=true"), check: func(t *testing.T, c Config) {
		if c.AutoFailover || c.AutoReconfigure || c.StopIsolatedPrimary || c.StopFailedPrimary || !c.PrimaryShutdownAsFailure {
			t.Errorf("%+v", c)
		}
	}},
	{name: "bad auto.failover", props: conf("auto.failover=no"), errors: []string{`c.properties:6: auto.failover: "no" is not a boolean; use true or false`}},
	{name: "max.failover.lag sizes", props: conf("max.failover.lag=1GB"), check: func(t *testing.T, c Config) {
		if c.MaxFailoverLag != 1<<30 {
			t.Errorf("got %d", c.MaxFailoverLag)
		}
	}},
	{name: "max.failover.lag plain bytes and zero", props: conf("max.failover.lag=0"), check: func(t *testing.T, c Config) {
		if c.MaxFailoverLag != 0 {
			t.Errorf("got %d", c.MaxFailoverLag)
		}
	}},
	{name: "max.failover.lag negative", props: conf("max.failover.lag=-1"), errors: []string{
		"c.properties:6: max.failover.lag: -1 is negative; write a whole number of bytes, or one followed by kB, MB, GB or TB (1024-based, as in postgresql.conf), e.g. 16MB"}},
	{name: "max.failover.lag unit case", props: conf("max.failover.lag=16mb"), errors: []string{
		`max.failover.lag: unit "mb" is written MB; units are case-sensitive, as in postgresql.conf`}},
	{name: "max.failover.lag unknown unit", props: conf("max.failover.lag=16 MiB"), errors: []string{`max.failover.lag: "16 MiB" has an unknown unit "MiB"`}},
	{name: "max.failover.lag not a number", props: conf("max.failover.lag=lots"), errors: []string{`max.failover.lag: "lots" is not a whole number of bytes`}},
	{name: "max.failover.lag decimal", props: conf("max.failover.lag=1.5GB"), errors: []string{`max.failover.lag: "1.5GB" is not a whole number of bytes`}},
	{name: "max.failover.lag too large", props: conf("max.failover.lag=99999999999TB"), errors: []string{"max.failover.lag: 99999999999TB is too large"}},
	{name: "primary.restart.timeout set", props: conf("primary.restart.timeout=10", "auto.resume.failure.period=0.5"), check: func(t *testing.T, c Config) {
		if c.PrimaryRestartTimeout != 10*time.Second || c.AutoResumeFailurePeriod != 500*time.Millisecond {
			t.Errorf("%v %v", c.PrimaryRestartTimeout, c.AutoResumeFailurePeriod)
		}
	}},
	{name: "primary.restart.timeout negative", props: conf("primary.restart.timeout=-5"), errors: []string{
		"c.properties:6: primary.restart.timeout: -5 is negative; use 0 (off) or a number of seconds greater than 0"}},
	{name: "auto.resume periods negative", props: conf("auto.resume.startup.period=-1", "auto.resume.failure.period=x"), errors: []string{
		"c.properties:6: auto.resume.startup.period: -1 is negative; use 0 (off)",
		`c.properties:7: auto.resume.failure.period: "x" is not a number of seconds`}},
	{name: "recovery.check.period zero", props: conf("recovery.check.period=0"), errors: []string{
		"c.properties:6: recovery.check.period: 0 is not more than 0; use a number of seconds greater than 0"}},

	// Scripts.
	{name: "scripts set", props: conf(`script.fence=/usr/local/bin/fence.sh %p %f "a b"`, "script.post.promotion=/bin/post %p",
		"script.db.failure=/bin/dbf", "script.primary.isolated=/bin/iso", "script.resumed=/bin/res", "script.timeout=2.5"),
		check: func(t *testing.T, c Config) {
			got := []string{c.ScriptFence, c.ScriptPostPromotion, c.ScriptDBFailure, c.ScriptPrimaryIsolated, c.ScriptResumed}
			want := []string{`/usr/local/bin/fence.sh %p %f "a b"`, "/bin/post %p", "/bin/dbf", "/bin/iso", "/bin/res"}
			if !reflect.DeepEqual(got, want) || c.ScriptTimeout != 2500*time.Millisecond {
				t.Errorf("got %q %v", got, c.ScriptTimeout)
			}
		}},
	{name: "script not absolute", props: conf("script.fence=fence.sh %p %f"), errors: []string{
		`c.properties:6: script.fence: program "fence.sh" is not an absolute path; write its full path, e.g. script.fence=/usr/local/bin/fence.sh %p %f (the agent's PATH is not your shell's)`}},
	{name: "script unclosed quote", props: conf("script.post.promotion=/bin/post 'x"), errors: []string{
		`c.properties:6: script.post.promotion: unclosed single quote at position 11 of "/bin/post 'x"; close it with '; pgfm splits the command line itself, without a shell`}},
	{name: "script trailing backslash", props: conf(`script.resumed=/bin/res \\`), errors: []string{"script.resumed: trailing backslash"}},
	{name: "script.timeout zero", props: conf("script.timeout=0"), errors: []string{"c.properties:6: script.timeout: 0 is not more than 0"}},

	// Notifications.
	{name: "notifications set", props: conf("script.notification=/usr/local/bin/notify.sh", "user.email=dba@example.com  ops@example.com",
		"from.email=efm@%h", "notification.level=warning", `notification.text.prefix=[prod]\nline two`), check: func(t *testing.T, c Config) {
		if c.ScriptNotification != "/usr/local/bin/notify.sh" || !reflect.DeepEqual(c.UserEmail, []string{"dba@example.com", "ops@example.com"}) ||
			c.FromEmail != "efm@%h" || c.NotificationLevel != "WARNING" || c.NotificationTextPrefix != "[prod]\nline two" {
			t.Errorf("%+v", c)
		}
	}},
	{name: "bad notification.level", props: conf("notification.level=DEBUG"), errors: []string{
		`c.properties:6: notification.level: "DEBUG" is not a notification level; use INFO, WARNING or SEVERE (the lowest severity that is sent)`}},
	{name: "user.email with commas", props: conf("user.email=dba@example.com,ops@example.com"), errors: []string{
		`c.properties:6: user.email: "dba@example.com,ops@example.com" has a comma; separate addresses with spaces, not commas`}},
	{name: "user.email not an address", props: conf("user.email=dba@example.com dba"), errors: []string{
		`c.properties:6: user.email: "dba" is not an email address; write a bare address such as dba@example.com, separated by spaces`}},
	{name: "user.email display name", props: conf("user.email=DBA <dba@example.com>"), errors: []string{`user.email: "DBA" is not an email address`}},
	{name: "bad from.email", props: conf("from.email=pgfm"), errors: []string{
		`c.properties:6: from.email: "pgfm" is not an email address; write a bare address such as dba@example.com, e.g. pgfm@%h (%h stands for this host's name)`}},

	// Database password (db.password.encrypted, script.db.password*).
	{name: "db.password.encrypted decrypted", props: conf("db.password.encrypted=" + mustEncrypt("c", "s3cret pass'word")),
		check: func(t *testing.T, c Config) {
			if c.DB.Password != "s3cret pass'word" || c.DB.PasswordScript != "" {
				t.Errorf("password %q script %q", c.DB.Password, c.DB.PasswordScript)
			}
			for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
				if out := fmt.Sprintf(f, c); strings.Contains(out, "s3cret") || !strings.Contains(out, "(hidden)") {
					t.Errorf("%s of the Config shows the password or does not say it is hidden: %s", f, out)
				}
			}
		}},
	{name: "db.password.encrypted of another cluster", props: conf("db.password.encrypted=" + mustEncrypt("prod", "s3cret")), errors: []string{
		`c.properties:6: db.password.encrypted: cannot decrypt it: encrypted for another cluster, not "c": a value only works in the cluster it was made for; run ` +
			"`pgfm encrypt c` again and use the value it prints"}},
	{name: "db.password.encrypted altered", props: conf("db.password.encrypted=" + tamper(mustEncrypt("c", "s3cret"))), errors: []string{
		"c.properties:6: db.password.encrypted: cannot decrypt it: the value is damaged or was altered", "run `pgfm encrypt c` again"}},
	{name: "db.password.encrypted of another version", props: conf("db.password.encrypted=pgfm9:AAAA"), errors: []string{
		`c.properties:6: db.password.encrypted: cannot decrypt it: not a value of this pgfm's encrypt command: format "pgfm9" is not "pgfm1"`,
		"run `pgfm encrypt c` again"}},
	{name: "db.password.encrypted in clear", props: conf("db.password.encrypted=s3cret"), errors: []string{
		`c.properties:6: db.password.encrypted: cannot decrypt it: not a value of this pgfm's encrypt command: it does not start with "pgfm1:"`}},
	{name: "script.db.password wins", props: conf("db.password.encrypted="+mustEncrypt("c", "s3cret"), "script.db.password=/usr/local/bin/pw.sh"),
		warns: []string{"c.properties:6: db.password.encrypted: ignored: script.db.password is set and gives the password (EFM does the same)"},
		check: func(t *testing.T, c Config) {
			if c.DB.Password != "" || c.DB.PasswordScript != "/usr/local/bin/pw.sh" {
				t.Errorf("password %q script %q", c.DB.Password, c.DB.PasswordScript)
			}
		}},
	{name: "script.db.password wins over a value it cannot read", props: conf("db.password.encrypted=garbage", "script.db.password=/bin/pw"),
		warns: []string{"db.password.encrypted: ignored: script.db.password is set"}},
	{name: "script.db.password settings", props: conf(`script.db.password=/usr/local/bin/pw.sh --vault "prod db"`, "script.db.password.retry=2.5",
		"script.db.password.encrypted=TRUE"), check: func(t *testing.T, c Config) {
		d := c.DB
		if d.PasswordScript != `/usr/local/bin/pw.sh --vault "prod db"` || d.PasswordRetry != 2500*time.Millisecond || !d.PasswordScriptEncrypted {
			t.Errorf("%+v", d)
		}
	}},
	{name: "script.db.password not absolute", props: conf("script.db.password=pw.sh"), errors: []string{
		`c.properties:6: script.db.password: program "pw.sh" is not an absolute path; write its full path, e.g. script.db.password=/usr/local/bin/db_password.sh`}},
	{name: "script.db.password.retry zero", props: conf("script.db.password.retry=0"), errors: []string{
		"c.properties:6: script.db.password.retry: 0 is not more than 0"}},
	{name: "script.db.password.encrypted alone", props: conf("script.db.password.encrypted=true"), warns: []string{
		"c.properties:6: script.db.password.encrypted: has no effect without script.db.password"}},
	{name: "script.db.password.encrypted not a boolean", props: conf("script.db.password.encrypted=yes"), errors: []string{
		`c.properties:6: script.db.password.encrypted: "yes" is not a boolean`}},
	{name: "encrypt.agent.messages either way, no warning", props: conf("encrypt.agent.messages=false"), check: func(t *testing.T, c Config) {
		if c.EncryptAgentMessages {
			t.Error("encrypt.agent.messages=false not kept")
		}
	}},
	{name: "encrypt.agent.messages not a boolean", props: conf("encrypt.agent.messages=maybe"), errors: []string{
		`c.properties:6: encrypt.agent.messages: "maybe" is not a boolean; use true or false`}},

	// Syntax problems reach Load too.
	{name: "duplicate key", props: conf("db.port=5433" + "\n" + "db.port=5434"), warns: []string{
		"c.properties:3: db.port: set on line 2 and again on line 3"},
		check: func(t *testing.T, c Config) {
			if c.DB.Port != 5434 {
				t.Errorf("port %d", c.DB.Port)
			}
		}},
	{name: "bad escape", props: conf(`application.name=\u12`), errors: []string{"c.properties:6: application.name: malformed Unicode escape"}},

	// Everything at once: every problem is listed, in file order, missing keys last.
	{name: "many problems", props: conf("-db.user", "db.port=x", "is.witness=maybe", "bogus=1"), errors: []string{
		"c.properties:2: db.port: \"x\" is not a port number",
		"c.properties:6: is.witness: \"maybe\" is not a boolean",
		"c.properties:7: bogus: unknown property",
		"c.properties: db.user: missing"}},
}

func TestLoad(t *testing.T) {
	for _, tc := range loadCases {
		t.Run(tc.name, func(t *testing.T) {
			c, warns, err := loadString(t, tc.props, "")
			if len(tc.errors) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			for _, want := range tc.errors {
				checkErr(t, err, want)
			}
			if err != nil && len(tc.errors) > 1 {
				checkOrder(t, err.Error(), tc.errors)
			}
			if len(warns) != len(tc.warns) {
				t.Errorf("got %d warnings, want %d:\n%s", len(warns), len(tc.warns), joinWarnings(warns))
			}
			all := joinWarnings(warns)
			for _, want := range tc.warns {
				if !strings.Contains(all, want) {
					t.Errorf("no warning contains %q; got:\n%s", want, all)
				}
			}
			if tc.check != nil && err == nil {
				tc.check(t, c)
			}
		})
	}
}

func mustEncrypt(cluster, password string) string {
	v, err := secret.Encrypt(cluster, password)
	if err != nil {
		panic(err)
	}
	return v
}

// tamper changes one character in the middle of an encrypted value.
func tamper(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// checkOrder asserts that the wanted substrings appear in that order,
// when they are on distinct lines of the joined error.
func checkOrder(t *testing.T, got string, wants []string) {
	t.Helper()
	lines := strings.Split(got, "\n")
	last := -1
	for _, w := range wants {
		for i, l := range lines {
			if strings.Contains(l, w) {
				if i < last {
					t.Errorf("%q is out of order in:\n%s", w, got)
				}
				last = i
				break
			}
		}
	}
}

func joinWarnings(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.String() + "\n")
	}
	return b.String()
}

func TestLoadErrorsAreProblems(t *testing.T) {
	_, _, err := loadString(t, conf("-db.user", "db.port=x"), "")
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("%T is not a *Problem", err)
	}
	if p.Key != "db.port" || p.Line != 2 || !strings.HasSuffix(p.File, "c.properties") {
		t.Errorf("first problem: %+v", p)
	}
}

func TestLoadNodes(t *testing.T) {
	c, _, err := loadString(t, conf(), "198.51.100.7:7800\n[2001:db8::7]:7800 # two\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := addrStrings(c.Nodes); !reflect.DeepEqual(s, []string{"198.51.100.7:7800", "[2001:db8::7]:7800"}) {
		t.Errorf("nodes %q", s)
	}
	_, _, err = loadString(t, conf("db.port=x"), "198.51.100.7:7800\nnot-an-address\n")
	checkErr(t, err, "c.properties:2: db.port")
	checkErr(t, err, "c.nodes:2: not-an-address: ")
}

func TestLoadFiles(t *testing.T) {
	_, _, err := Load(t.TempDir(), "c")
	checkErr(t, err, "c.properties: cannot read the properties file")
	checkErr(t, err, "create it (packaging/cluster.properties.sample is a template)")

	_, _, err = Load(t.TempDir(), "../etc/passwd")
	checkErr(t, err, `cluster name "../etc/passwd" starts with '.'`)
}

func TestValidateClusterName(t *testing.T) {
	for name, want := range map[string]string{
		"main":                  "",
		"prod-2_eu.west":        "",
		"A":                     "",
		strings.Repeat("a", 64): "",
		"":                      "cluster name is empty; use 1 to 64 letters",
		strings.Repeat("a", 65): "is 65 characters long",
		".hidden":               `starts with '.'`,
		"a b":                   `character ' ' at position 2 is not allowed`,
		"a/b":                   `character '/' at position 2 is not allowed`,
		"café":                  "at position 4 is not allowed",
	} {
		checkErr(t, ValidateClusterName(name), want)
	}
}

func TestEffective(t *testing.T) {
	c, _, err := loadString(t, conf("local.period=0.5", "priority.standbys=192.0.2.11 192.0.2.12",
		"db.password.encrypted="+mustEncrypt("c", "secret"), "script.db.password.retry=3"), "")
	if err != nil {
		t.Fatal(err)
	}
	eff := c.Effective()
	got := map[string]string{}
	var order []string
	for _, kv := range eff {
		got[kv[0]] = kv[1]
		order = append(order, kv[0])
	}
	for k, v := range map[string]string{
		"db.user": "postgres", "db.port": "5432", "bind.address": "192.0.2.10:7800", "admin.port": "7809",
		"local.period": "0.5", "node.timeout": "5", "is.witness": "false", "enable.stop.cluster": "true",
		"priority.standbys": "192.0.2.11 192.0.2.12", "db.config.dir": "/var/lib/postgresql/17/main",
		"state.dir": "/var/lib/pgfm/c", "db.bin": "", "jdbc.sslmode": "disable",
		"auto.failover": "true", "max.failover.lag": "16MB", "primary.restart.timeout": "0", "recovery.check.period": "0.2",
		"script.timeout": "30", "script.fence": "", "user.email": "", "from.email": "pgfm@%h", "notification.level": "INFO",
		"script.db.password": "", "script.db.password.retry": "3", "script.db.password.encrypted": "false",
		"encrypt.agent.messages": "true",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if order[0] != "db.user" || len(eff) != 78 { // every supported key but dcs.password and db.password.encrypted
		t.Errorf("order %v", order)
	}
	for _, kv := range eff {
		if kv[0] == "dcs.password" || kv[0] == "db.password.encrypted" || strings.Contains(kv[1], "secret") || strings.Contains(kv[1], secret.Prefix) {
			t.Errorf("secret in effective config: %v", kv)
		}
	}
}

// FuzzBuild runs arbitrary files through parsing and validation: no panic,
// and every problem and warning names the file and a line that exists.
func FuzzBuild(f *testing.F) {
	for _, tc := range loadCases {
		f.Add([]byte(tc.props))
	}
	for _, tc := range dcsCases {
		f.Add([]byte(tc.props))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _, _ := ParseProperties(data, "f.properties")
		_, warns, errs := build("c", "f.properties", entries)
		lines := len(naturalLines(data))
		for _, w := range warns {
			if w.File != "f.properties" || w.Line < 1 || w.Line > lines {
				t.Fatalf("warning with bad location: %+v", w)
			}
		}
		for _, err := range errs {
			var p *Problem
			if !errors.As(err, &p) || p.File != "f.properties" || p.Line < 0 || p.Line > lines {
				t.Fatalf("problem with bad location: %v", err)
			}
		}
	})
}

func TestElectionTimeout(t *testing.T) {
	for _, tc := range []struct {
		props, want string
	}{
		{"dcs.election.timeout=0.5\nnode.timeout=1\n", ""},
		{"dcs.election.timeout=2\nnode.timeout=2\n", "node.timeout: 2 seconds is too short; use 3 or more"},
		{"dcs.election.timeout=0.05\n", "dcs.election.timeout: 0.05 seconds is out of range; use 0.1 to 50"},
	} {
		dir := t.TempDir()
		base := "db.user=postgres\ndb.port=5432\ndb.database=postgres\ndb.data.dir=/d\nbind.address=192.0.2.10:7800\n"
		if err := os.WriteFile(filepath.Join(dir, "c.properties"), []byte(base+tc.props), 0o644); err != nil {
			t.Fatal(err)
		}
		c, _, err := Load(dir, "c")
		switch {
		case tc.want == "" && err != nil:
			t.Fatalf("%q: %v", tc.props, err)
		case tc.want == "" && c.ElectionTimeout != 500*time.Millisecond:
			t.Fatalf("%q: election timeout %s", tc.props, c.ElectionTimeout)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Fatalf("%q: err %v, want %q", tc.props, err, tc.want)
		}
	}
}
