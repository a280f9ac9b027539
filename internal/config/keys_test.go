package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestKeyTable checks the table's own consistency, so that the loader's
// "internal error" branches stay unreachable.
func TestKeyTable(t *testing.T) {
	ki := newKeyIndex()
	if len(ki.byName) != len(ki.list) {
		t.Errorf("duplicate names in the key table: %d names, %d entries", len(ki.byName), len(ki.list))
	}
	var c Config
	for _, k := range ki.list {
		switch k.status {
		case supported:
			if !fieldMatchesKind(k.field(&c), k.kind) {
				t.Errorf("%s: field %T does not hold kind %d", k.name, k.field(&c), k.kind)
			}
			for _, v := range []string{strings.ReplaceAll(k.def, "CLUSTER", "c"), k.example} {
				if v == "" {
					continue
				}
				if msg := setField(&c, &k, v); msg != "" {
					t.Errorf("%s: default or example %q does not parse: %s", k.name, v, msg)
				}
			}
			if k.need != optional && k.example == "" {
				t.Errorf("%s: required keys need an example for the 'add KEY=...' message", k.name)
			}
		case alias:
			target, ok := ki.byName[k.target]
			if !ok || target.status == alias {
				t.Errorf("%s: alias target %q is not a current key", k.name, k.target)
			}
		case notApplicable:
			if k.note == "" {
				t.Errorf("%s: say why it does not apply", k.name)
			}
		case notImplemented:
		default:
			t.Errorf("%s: no status", k.name)
		}
	}
}

func fieldMatchesKind(f any, k kind) bool {
	switch f.(type) {
	case *string:
		return k == kindString || k == kindPath || k == kindSSLMode || k == kindLevel || k == kindCommand || k == kindEmail ||
			k == kindSecret || k == kindSyncMode || k == kindEncrypted
	case *int:
		return k == kindPort || k == kindCount || k == kindPositive
	case *bool:
		return k == kindBool
	case *time.Duration:
		return k == kindSeconds || k == kindSecondsOrZero
	case *uint64:
		return k == kindBytes
	case *[]string:
		return k == kindEmailList || k == kindEndpoints
	case *netip.AddrPort:
		return k == kindPeerAddr
	case *[]netip.Addr:
		return k == kindAddrList
	case *netip.Addr:
		return k == kindAddr
	}
	return false
}

// TestEFM54Names checks that every property of EFM 5.4 (efm-5x-notes.md,
// "Full 5.4 property list") is known, so a 5.4 file never fails on a name.
func TestEFM54Names(t *testing.T) {
	names := `db.user db.password.encrypted db.port db.database script.db.password script.db.password.retry
	script.db.password.encrypted db.service.owner db.service.name db.bin db.data.dir db.config.dir jdbc.sslmode
	jdbc.properties user.email from.email notification.level notification.text.prefix script.notification
	bind.address external.address admin.port primary.health.check.port is.witness local.period local.timeout
	local.timeout.final remote.timeout node.timeout encrypt.agent.messages enable.stop.cluster stop.isolated.primary
	stop.failed.primary primary.shutdown.as.failure update.physical.slots.period ping.server.ip ping.server.command
	auto.allow.hosts stable.nodes.file db.reuse.connection.count auto.failover auto.reconfigure auto.rewind
	auto.basebackup promotable use.replay.tiebreaker standby.restart.delay application.name restore.command
	backup.wal reconfigure.num.sync reconfigure.num.sync.max reconfigure.sync.primary check.num.sync.period
	minimum.standbys priority.standbys recovery.check.period restart.connection.timeout auto.resume.startup.period
	auto.resume.failure.period virtual.ip virtual.ip.interface virtual.ip.prefix virtual.ip.single
	check.vip.before.promotion check.vip.timeout release.vip.background release.vip.pre.wait release.vip.post.wait
	pgpool.enable pcp.user pcp.host pcp.port pcp.pass.file pgpool.bin script.load.balancer.attach
	script.load.balancer.detach detach.on.agent.failure script.fence script.post.promotion script.resumed
	script.db.failure script.primary.isolated script.remote.pre.promotion script.remote.post.promotion
	script.custom.monitor custom.monitor.interval custom.monitor.timeout custom.monitor.safe.mode sudo.command
	sudo.user.command lock.dir pid.dir log.dir syslog.host syslog.port syslog.protocol syslog.facility
	file.log.enabled syslog.enabled jgroups.loglevel efm.loglevel jdbc.loglevel jvm.options`
	ki := newKeyIndex()
	for _, n := range strings.Fields(names) {
		if k, ok := ki.byName[n]; !ok || k.status == alias {
			t.Errorf("EFM 5.4 property %s is not a current key", n)
		}
	}
}

// TestEFMFiles loads realistic EFM 4.x and 5.x files unchanged: no error,
// and warnings only for keys that do not apply or are not implemented, and
// for older names (4.x's auto.resume.period).
func TestEFMFiles(t *testing.T) {
	ki := newKeyIndex()
	for _, cluster := range []string{"efm4", "efm5"} {
		t.Run(cluster, func(t *testing.T) {
			c, warns, err := Load("testdata", cluster)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) == 0 {
				t.Error("no warnings; the files set keys pgfm ignores")
			}
			for _, w := range warns {
				k := ki.byName[w.Key]
				if w.Key == "db.password.encrypted" && strings.Contains(w.Message, "EFM's encrypted form") {
					continue // EFM 4's value, which pgfm cannot read
				}
				if k != nil && k.status == alias {
					if strings.HasSuffix(w.Message, "; rename it") {
						continue
					}
					k = ki.byName[k.target]
				}
				if k == nil || (k.status != notApplicable && k.status != notImplemented) || w.Line < 1 {
					t.Errorf("unexpected warning: %s", w)
				}
			}
			if c.NodeTimeout != 50*time.Second || c.LocalTimeout != 60*time.Second || c.DB.Bin == "" {
				t.Errorf("EFM timings or db.bin not kept: %+v", c)
			}
			if c.ScriptFence != "/usr/local/bin/fence.sh %p %f" || !c.AutoFailover || !c.StopIsolatedPrimary ||
				c.RecoveryCheckPeriod != time.Second || c.AutoResumeStartupPeriod != 0 {
				t.Errorf("EFM failover settings not kept: %+v", c)
			}
		})
	}
}

// TestSample keeps packaging/cluster.properties.sample in step with the key
// table: it loads cleanly, sets every supported key, and mentions every key
// that is accepted but not implemented.
func TestSample(t *testing.T) {
	const path = "../../packaging/cluster.properties.sample"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/sample.properties", data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, warns, err := Load(dir, "sample")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		t.Errorf("sample gives a warning: %s", w)
	}
	entries, _, _ := ParseProperties(data, path)
	set := map[string]bool{}
	for _, e := range entries {
		set[e.Key] = true
	}
	for _, k := range newKeyIndex().list {
		switch {
		case k.status == supported && !set[k.name]:
			t.Errorf("sample does not set supported key %s", k.name)
		case k.status == notImplemented && !strings.Contains(string(data), "\n# "+k.name+"="):
			t.Errorf("sample does not list not-implemented key %s", k.name)
		}
	}
}

// TestDocs checks that docs/properties.md names every known key.
func TestDocs(t *testing.T) {
	data, err := os.ReadFile("../../docs/properties.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range newKeyIndex().list {
		if !strings.Contains(string(data), "`"+k.name+"`") {
			t.Errorf("docs/properties.md does not mention `%s`", k.name)
		}
	}
}
