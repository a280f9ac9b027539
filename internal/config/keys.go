package config

// This file is the key table: every property name pgfm knows, as data. The
// loader, Effective, the sample file test and the docs test all walk it, so a
// key added here is parsed, logged and checked for documentation at once.

// status says what pgfm does with a known key.
type status int

const (
	supported      status = iota + 1 // parsed into Config
	notImplemented                   // an EFM feature pgfm does not have yet: accepted, ignored, warned
	notApplicable                    // EFM/Java plumbing with no meaning for pgfm: accepted, warned
	alias                            // an older EFM name: applied to target, warned
)

// kind is how a supported key's value is written and checked.
type kind int

const (
	kindString        kind = iota + 1
	kindPath               // absolute path when set
	kindBool               // true / false
	kindPort               // 1..65535
	kindCount              // integer >= 0
	kindSeconds            // seconds, decimals allowed, > 0
	kindPeerAddr           // IP:port other agents can reach
	kindAddrList           // space-separated IPs (IP:port accepted, the IP kept)
	kindSSLMode            // libpq sslmode subset EFM accepts
	kindSecondsOrZero      // seconds, decimals allowed, >= 0 (0 turns the feature off)
	kindBytes              // bytes, PostgreSQL style: 16777216, 16MB, 512kB (1024-based)
	kindLevel              // notification.level: INFO, WARNING or SEVERE
	kindCommand            // a script's command line: absolute program path, then arguments (see hook.Split)
	kindEmail              // one email address; %h stands for the host name
	kindEmailList          // space-separated email addresses
	kindAddr               // one IP address (no port)
	kindEndpoints          // comma-separated etcd client URLs, [http:// or https://]host:port
	kindSecret             // a string Effective never logs (a password)
	kindSyncMode           // synchronous.mode: off, on or strict
	kindPositive           // integer >= 1
	kindEncrypted          // a value of `pgfm encrypt` (package secret): decrypted by Load, never logged
)

// need says on which kind of node a key must be set.
type need int

const (
	optional     need = iota
	everyNode         // database nodes and witnesses
	databaseNode      // only when is.witness=false
)

// keySpec describes one property name.
type keySpec struct {
	name   string
	status status

	// supported keys
	kind    kind
	def     string // default as written in the file; "CLUSTER" is replaced by the cluster name
	need    need
	example string            // a valid example value, used in "add KEY=..." messages
	field   func(*Config) any // pointer to the Config field the value goes to

	// alias keys
	target  string
	convert func(string) (string, bool) // old value → new value; false if it cannot be converted

	// notApplicable: why; notImplemented: what to do meanwhile (optional)
	note string
	// notImplemented: values that ask for what pgfm does anyway (the
	// feature off), so they are accepted without a warning; a blank value
	// always is.
	off []string
}

func sup(name string, k kind, def string, n need, example string, field func(*Config) any) keySpec {
	return keySpec{name: name, status: supported, kind: k, def: def, need: n, example: example, field: field}
}

func todo(name string) keySpec { return keySpec{name: name, status: notImplemented} }

// todoOff is todo with the values that leave the feature off.
func todoOff(name string, off ...string) keySpec {
	return keySpec{name: name, status: notImplemented, off: off}
}

func na(name, reason string) keySpec { return keySpec{name: name, status: notApplicable, note: reason} }

func old(name, target string) keySpec { return keySpec{name: name, status: alias, target: target} }

// keyTable lists every known key. Supported keys come first, in the order
// Effective logs them and the sample file documents them.
func keyTable() []keySpec {
	return []keySpec{
		// Database connection and local database.
		sup("db.user", kindString, "", everyNode, "postgres", func(c *Config) any { return &c.DB.User }),
		sup("db.port", kindPort, "", everyNode, "5432", func(c *Config) any { return &c.DB.Port }),
		sup("db.database", kindString, "", everyNode, "postgres", func(c *Config) any { return &c.DB.Database }),
		sup("db.password.encrypted", kindEncrypted, "", optional, "", func(c *Config) any { return &c.DB.Password }),
		sup("script.db.password", kindCommand, "", optional, "/usr/local/bin/db_password.sh", func(c *Config) any { return &c.DB.PasswordScript }),
		sup("script.db.password.retry", kindSeconds, "10", optional, "10", func(c *Config) any { return &c.DB.PasswordRetry }),
		sup("script.db.password.encrypted", kindBool, "false", optional, "false", func(c *Config) any { return &c.DB.PasswordScriptEncrypted }),
		sup("db.service.owner", kindString, "postgres", optional, "postgres", func(c *Config) any { return &c.DB.ServiceOwner }),
		sup("db.bin", kindPath, "", optional, "/usr/lib/postgresql/17/bin", func(c *Config) any { return &c.DB.Bin }),
		sup("db.data.dir", kindPath, "", databaseNode, "/var/lib/postgresql/17/main", func(c *Config) any { return &c.DB.DataDir }),
		sup("db.config.dir", kindPath, "", optional, "/etc/postgresql/17/main", func(c *Config) any { return &c.DB.ConfigDir }),
		sup("jdbc.sslmode", kindSSLMode, "disable", optional, "require", func(c *Config) any { return &c.DB.SSLMode }),

		// Membership, network, identity.
		sup("bind.address", kindPeerAddr, "", everyNode, "192.0.2.10:7800", func(c *Config) any { return &c.BindAddress }),
		sup("admin.port", kindPort, "7809", optional, "7809", func(c *Config) any { return &c.AdminPort }),
		sup("is.witness", kindBool, "false", optional, "false", func(c *Config) any { return &c.IsWitness }),
		sup("auto.allow.hosts", kindBool, "false", optional, "false", func(c *Config) any { return &c.AutoAllowHosts }),
		sup("stable.nodes.file", kindBool, "false", optional, "false", func(c *Config) any { return &c.StableNodesFile }),
		sup("cluster.key.file", kindPath, "", optional, "/etc/pgfm/main.key", func(c *Config) any { return &c.TLS.ClusterKeyFile }),
		sup("tls.ca.file", kindPath, "", optional, "/etc/pgfm/ca.pem", func(c *Config) any { return &c.TLS.CAFile }),
		sup("tls.cert.file", kindPath, "", optional, "/etc/pgfm/node.pem", func(c *Config) any { return &c.TLS.CertFile }),
		sup("tls.key.file", kindPath, "", optional, "/etc/pgfm/node-key.pem", func(c *Config) any { return &c.TLS.KeyFile }),
		sup("admin.max.connections", kindPositive, "64", optional, "64", func(c *Config) any { return &c.AdminMaxConnections }),
		sup("encrypt.agent.messages", kindBool, "true", optional, "true", func(c *Config) any { return &c.EncryptAgentMessages }),
		sup("enable.stop.cluster", kindBool, "true", optional, "true", func(c *Config) any { return &c.EnableStopCluster }),

		// Timers, in seconds.
		sup("local.period", kindSeconds, "1", optional, "1", func(c *Config) any { return &c.LocalPeriod }),
		sup("local.timeout", kindSeconds, "2", optional, "2", func(c *Config) any { return &c.LocalTimeout }),
		sup("local.timeout.final", kindSeconds, "2", optional, "2", func(c *Config) any { return &c.LocalTimeoutFinal }),
		sup("remote.timeout", kindSeconds, "2", optional, "2", func(c *Config) any { return &c.RemoteTimeout }),
		sup("node.timeout", kindSeconds, "5", optional, "5", func(c *Config) any { return &c.NodeTimeout }),
		sup("virtual.ip", kindAddr, "", optional, "192.0.2.100", func(c *Config) any { return &c.VirtualIP }),
		sup("virtual.ip.interface", kindString, "", optional, "eth0", func(c *Config) any { return &c.VirtualIPInterface }),
		sup("virtual.ip.prefix", kindCount, "", optional, "24", func(c *Config) any { return &c.VirtualIPPrefix }),
		sup("virtual.ip.single", kindBool, "true", optional, "true", func(c *Config) any { return &c.VirtualIPSingle }),
		sup("check.vip.before.promotion", kindBool, "true", optional, "true", func(c *Config) any { return &c.CheckVIPBeforePromotion }),
		sup("check.vip.timeout", kindSeconds, "60", optional, "60", func(c *Config) any { return &c.CheckVIPTimeout }),
		sup("primary.health.check.port", kindCount, "", optional, "8080", func(c *Config) any { return &c.PrimaryHealthCheckPort }),
		sup("dcs.election.timeout", kindSeconds, "1", optional, "1", func(c *Config) any { return &c.ElectionTimeout }),

		// External etcd (pgfm's own): blank dcs.endpoints = embedded members.
		sup("dcs.endpoints", kindEndpoints, "", optional, "https://etcd1.example.com:2379,https://etcd2.example.com:2379",
			func(c *Config) any { return &c.DCS.Endpoints }),
		sup("dcs.cacert", kindPath, "", optional, "/etc/pgfm/etcd-ca.pem", func(c *Config) any { return &c.DCS.CACert }),
		sup("dcs.cert", kindPath, "", optional, "/etc/pgfm/etcd-client.pem", func(c *Config) any { return &c.DCS.Cert }),
		sup("dcs.key", kindPath, "", optional, "/etc/pgfm/etcd-client-key.pem", func(c *Config) any { return &c.DCS.Key }),
		sup("dcs.user", kindString, "", optional, "pgfm-main", func(c *Config) any { return &c.DCS.User }),
		sup("dcs.password", kindSecret, "", optional, "", func(c *Config) any { return &c.DCS.Password }),

		// Failover policy and local files.
		sup("application.name", kindString, "", optional, "node1", func(c *Config) any { return &c.ApplicationName }),
		sup("lock.dir", kindPath, "/run/lock/pgfm", optional, "/run/lock/pgfm", func(c *Config) any { return &c.LockDir }),
		sup("log.dir", kindPath, "/var/log/pgfm", optional, "/var/log/pgfm", func(c *Config) any { return &c.LogDir }),
		sup("state.dir", kindPath, "/var/lib/pgfm/CLUSTER", optional, "/var/lib/pgfm/main", func(c *Config) any { return &c.StateDir }),
		sup("promotable", kindBool, "true", optional, "true", func(c *Config) any { return &c.Promotable }),
		sup("priority.standbys", kindAddrList, "", optional, "192.0.2.11 192.0.2.12", func(c *Config) any { return &c.PriorityStandbys }),
		sup("minimum.standbys", kindCount, "0", optional, "0", func(c *Config) any { return &c.MinimumStandbys }),
		sup("auto.failover", kindBool, "true", optional, "true", func(c *Config) any { return &c.AutoFailover }),
		sup("auto.reconfigure", kindBool, "true", optional, "true", func(c *Config) any { return &c.AutoReconfigure }),
		sup("max.failover.lag", kindBytes, "16MB", optional, "16MB", func(c *Config) any { return &c.MaxFailoverLag }),
		sup("stop.isolated.primary", kindBool, "true", optional, "true", func(c *Config) any { return &c.StopIsolatedPrimary }),
		sup("stop.failed.primary", kindBool, "true", optional, "true", func(c *Config) any { return &c.StopFailedPrimary }),
		sup("primary.shutdown.as.failure", kindBool, "false", optional, "false", func(c *Config) any { return &c.PrimaryShutdownAsFailure }),
		sup("primary.restart.timeout", kindSecondsOrZero, "0", optional, "0", func(c *Config) any { return &c.PrimaryRestartTimeout }),
		sup("recovery.check.period", kindSeconds, "0.2", optional, "0.2", func(c *Config) any { return &c.RecoveryCheckPeriod }),
		sup("auto.resume.startup.period", kindSecondsOrZero, "0", optional, "0", func(c *Config) any { return &c.AutoResumeStartupPeriod }),
		sup("auto.resume.failure.period", kindSecondsOrZero, "0", optional, "0", func(c *Config) any { return &c.AutoResumeFailurePeriod }),
		sup("auto.rewind", kindBool, "false", optional, "false", func(c *Config) any { return &c.AutoRewind }),
		sup("auto.basebackup", kindBool, "false", optional, "false", func(c *Config) any { return &c.AutoBasebackup }),
		sup("synchronous.mode", kindSyncMode, "off", optional, "on", func(c *Config) any { return &c.SyncMode }),
		sup("synchronous.node.count", kindPositive, "1", optional, "1", func(c *Config) any { return &c.SyncNodeCount }),
		sup("reconfigure.num.sync", kindBool, "false", optional, "false", func(c *Config) any { return &c.ReconfigureNumSync }),
		sup("reconfigure.num.sync.max", kindCount, "", optional, "2", func(c *Config) any { return &c.ReconfigureNumSyncMax }),
		sup("reconfigure.sync.primary", kindBool, "false", optional, "false", func(c *Config) any { return &c.ReconfigureSyncPrimary }),
		sup("check.num.sync.period", kindSeconds, "30", optional, "30", func(c *Config) any { return &c.CheckNumSyncPeriod }),

		// Scripts.
		sup("script.fence", kindCommand, "", optional, "/usr/local/bin/fence.sh %p %f", func(c *Config) any { return &c.ScriptFence }),
		sup("script.post.promotion", kindCommand, "", optional, "/usr/local/bin/post_promotion.sh %p %f", func(c *Config) any { return &c.ScriptPostPromotion }),
		sup("script.db.failure", kindCommand, "", optional, "/usr/local/bin/db_failure.sh", func(c *Config) any { return &c.ScriptDBFailure }),
		sup("script.primary.isolated", kindCommand, "", optional, "/usr/local/bin/isolated.sh", func(c *Config) any { return &c.ScriptPrimaryIsolated }),
		sup("script.resumed", kindCommand, "", optional, "/usr/local/bin/resumed.sh", func(c *Config) any { return &c.ScriptResumed }),
		sup("script.timeout", kindSeconds, "30", optional, "30", func(c *Config) any { return &c.ScriptTimeout }),
		sup("script.user", kindString, "", optional, "postgres", func(c *Config) any { return &c.ScriptUser }),

		// Notifications.
		sup("script.notification", kindCommand, "", optional, "/usr/local/bin/notify.sh", func(c *Config) any { return &c.ScriptNotification }),
		sup("user.email", kindEmailList, "", optional, "dba@example.com ops@example.com", func(c *Config) any { return &c.UserEmail }),
		sup("from.email", kindEmail, "pgfm@%h", optional, "pgfm@%h", func(c *Config) any { return &c.FromEmail }),
		sup("notification.level", kindLevel, "INFO", optional, "WARNING", func(c *Config) any { return &c.NotificationLevel }),
		sup("notification.text.prefix", kindString, "", optional, "[prod]", func(c *Config) any { return &c.NotificationTextPrefix }),

		// EFM features pgfm does not have yet.
		todo("db.service.name"),
		todoOff("db.reuse.connection.count", "0"),
		todo("restart.connection.timeout"),
		todo("external.address"),
		todo("ping.server.ip"),
		todo("ping.server.command"),
		todoOff("use.replay.tiebreaker", "false"),
		todoOff("standby.restart.delay", "0"),
		todoOff("update.physical.slots.period", "0"),
		todo("restore.command"),
		todoOff("backup.wal", "false"),
		todo("release.vip.background"),
		todoOff("release.vip.pre.wait", "0"),
		todoOff("release.vip.post.wait", "0"),
		todo("script.load.balancer.attach"),
		todo("script.load.balancer.detach"),
		todoOff("detach.on.agent.failure", "false"),
		todoOff("pgpool.enable", "false"),
		todo("pcp.user"),
		todo("pcp.host"),
		todo("pcp.port"),
		todo("pcp.pass.file"),
		todo("pgpool.bin"),
		todo("script.remote.pre.promotion"),
		todo("script.remote.post.promotion"),
		todo("script.custom.monitor"),
		todo("custom.monitor.interval"),
		todo("custom.monitor.timeout"),
		todoOff("custom.monitor.safe.mode", "false"),

		// EFM/Java plumbing that has no meaning for pgfm.
		na("jvm.options", "pgfm is a Go program: there is no JVM"),
		na("jgroups.loglevel", "pgfm does not use JGroups"),
		na("efm.loglevel", "pgfm has its own logging, to systemd's journal"),
		na("jdbc.loglevel", "pgfm does not use JDBC"),
		na("jdbc.properties", "pgfm does not use JDBC; use jdbc.sslmode or libpq's PG* environment variables"),
		na("sudo.command", "pgfm does not wrap its commands in sudo"),
		na("sudo.user.command", "pgfm does not wrap its commands in sudo"),
		na("pid.dir", "systemd manages the process, so there is no pid file"),
		na("syslog.enabled", "pgfm logs to systemd's journal, which forwards to syslog"),
		na("syslog.host", "pgfm logs to systemd's journal, which forwards to syslog"),
		na("syslog.port", "pgfm logs to systemd's journal, which forwards to syslog"),
		na("syslog.protocol", "pgfm logs to systemd's journal, which forwards to syslog"),
		na("syslog.facility", "pgfm logs to systemd's journal, which forwards to syslog"),
		na("file.log.enabled", "pgfm logs to systemd's journal"),
		na("efm.license", "pgfm needs no licence key"),
		na("jgroups.max.tries", "pgfm does not use JGroups; node.timeout sets how long a silent node has"),
		na("jgroups.timeout", "replaced by node.timeout, in seconds"),

		// Older EFM names.
		old("virtualIp", "virtual.ip"),
		old("virtualIp.interface", "virtual.ip.interface"),
		{name: "virtualIp.netmask", status: alias, target: "virtual.ip.prefix", convert: netmaskToPrefix},
		old("virtualIp.single", "virtual.ip.single"),
		old("pingServerIp", "ping.server.ip"),
		old("pingServerCommand", "ping.server.command"),
		old("db.recovery.conf.dir", "db.data.dir"),
		old("db.recovery.dir", "db.data.dir"),
		old("stop.isolated.master", "stop.isolated.primary"),
		old("stop.failed.master", "stop.failed.primary"),
		old("master.shutdown.as.failure", "primary.shutdown.as.failure"),
		old("reconfigure.sync.master", "reconfigure.sync.primary"),
		old("script.master.isolated", "script.primary.isolated"),
		old("auto.resume.period", "auto.resume.startup.period"),
	}
}

// keyIndex is the key table with a lookup by name. It is built per call
// (no package-level state) and never modified after newKeyIndex returns.
type keyIndex struct {
	list   []keySpec
	byName map[string]*keySpec
}

func newKeyIndex() keyIndex {
	ki := keyIndex{list: keyTable()}
	ki.byName = make(map[string]*keySpec, len(ki.list))
	for i := range ki.list {
		ki.byName[ki.list[i].name] = &ki.list[i]
	}
	return ki
}
