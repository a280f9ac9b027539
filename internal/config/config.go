package config

import (
	"net/netip"
	"strconv"
	"time"
)

// Config is the validated runtime configuration of one agent. It is built
// once by Load and passed by value; nothing rewrites it afterwards.
type Config struct {
	Cluster        string
	Dir            string           // config directory
	PropertiesFile string           // full path
	NodesFile      string           // full path
	Nodes          []netip.AddrPort // from .nodes

	DB DB

	BindAddress       netip.AddrPort // bind.address
	AdminPort         int            // admin.port, default 7809
	IsWitness         bool           // is.witness, default false
	AutoAllowHosts    bool           // auto.allow.hosts, default false
	StableNodesFile   bool           // stable.nodes.file, default false
	EnableStopCluster bool           // enable.stop.cluster, default true

	LocalPeriod       time.Duration // local.period, default 1s
	LocalTimeout      time.Duration // local.timeout, default 2s
	LocalTimeoutFinal time.Duration // local.timeout.final, default 2s
	RemoteTimeout     time.Duration // remote.timeout, default 2s
	NodeTimeout       time.Duration // node.timeout, default 5s (>= 1.5 × dcs.election.timeout, whole seconds: it is an etcd lease TTL)
	// Virtual IP (EFM's virtual.ip*): the primary holds VirtualIP on
	// VirtualIPInterface; none when VirtualIP is invalid (unset).
	VirtualIP               netip.Addr    // virtual.ip
	VirtualIPInterface      string        // virtual.ip.interface
	VirtualIPPrefix         int           // virtual.ip.prefix, default 32 (IPv4) or 128 (IPv6)
	VirtualIPSingle         bool          // virtual.ip.single, default true
	CheckVIPBeforePromotion bool          // check.vip.before.promotion, default true
	CheckVIPTimeout         time.Duration // check.vip.timeout, default 60s
	// PrimaryHealthCheckPort (EFM 5.4): a listener answering any path with
	// 200 on the primary and 404 elsewhere; 0 = off.
	PrimaryHealthCheckPort int

	// ElectionTimeout is etcd's election timeout (dcs.election.timeout,
	// default 1s; the heartbeat is a tenth of it). pgfm's own.
	ElectionTimeout time.Duration

	ApplicationName  string       // application.name
	LockDir          string       // lock.dir, default /run/lock/pgfm
	LogDir           string       // log.dir, default /var/log/pgfm
	StateDir         string       // state.dir, default /var/lib/pgfm/CLUSTER
	Promotable       bool         // promotable, default true
	PriorityStandbys []netip.Addr // priority.standbys
	MinimumStandbys  int          // minimum.standbys, default 0, >= 0

	// Failover policy (issue 3). The booleans default as in EFM.
	AutoFailover             bool          // auto.failover, default true; false: notify only
	AutoReconfigure          bool          // auto.reconfigure, default true: re-point the other standbys
	MaxFailoverLag           uint64        // max.failover.lag, bytes, default 16 MiB (pgfm's own)
	StopIsolatedPrimary      bool          // stop.isolated.primary, default true
	StopFailedPrimary        bool          // stop.failed.primary, default true
	PrimaryShutdownAsFailure bool          // primary.shutdown.as.failure, default false
	PrimaryRestartTimeout    time.Duration // primary.restart.timeout, default 0 = fail over at once (pgfm's own)
	RecoveryCheckPeriod      time.Duration // recovery.check.period, default 0.2s (EFM: 1s)
	AutoResumeStartupPeriod  time.Duration // auto.resume.startup.period, default 0 = wait for `pgfm resume`
	AutoResumeFailurePeriod  time.Duration // auto.resume.failure.period, default 0 = wait for `pgfm resume`

	// Scripts: command lines as written (hook.Split syntax, absolute program
	// path, EFM placeholders left for hook.Runner to expand); "" = none.
	ScriptFence           string        // script.fence
	ScriptPostPromotion   string        // script.post.promotion
	ScriptDBFailure       string        // script.db.failure
	ScriptPrimaryIsolated string        // script.primary.isolated
	ScriptResumed         string        // script.resumed
	ScriptTimeout         time.Duration // script.timeout, default 30s (pgfm's own)

	// Notifications.
	ScriptNotification     string   // script.notification, called as SCRIPT "<subject>" "<body>"
	UserEmail              []string // user.email, space-separated
	FromEmail              string   // from.email, default "pgfm@%h" (%h = host name, expanded by the notifier)
	NotificationLevel      string   // notification.level: INFO (default), WARNING or SEVERE, upper case
	NotificationTextPrefix string   // notification.text.prefix
}

// DB is how the agent reaches and controls its local PostgreSQL server.
type DB struct {
	User         string // db.user (required on every node, witness too)
	Port         int    // db.port (required everywhere)
	Database     string // db.database (required everywhere)
	ServiceOwner string // db.service.owner (default "postgres"; database nodes only)
	Bin          string // db.bin: dir with pg_ctl; "" = resolve later with `pg_config --bindir`
	DataDir      string // db.data.dir (required on database nodes); absolute
	ConfigDir    string // db.config.dir, default = DataDir
	SSLMode      string // jdbc.sslmode: disable | require | verify-ca | verify-full (libpq sslmode)
}

// Warning is something in the files that does not stop the agent but that
// the user should change (an old name, an ignored key, a duplicate).
type Warning struct {
	File    string
	Line    int // 0 when the warning is about the file as a whole or a missing key
	Key     string
	Message string
}

// String formats the warning as "prod.properties:12: jvm.options: <message>".
func (w Warning) String() string { return location(w.File, w.Line, w.Key) + w.Message }

// Problem is one error found in a configuration file. Load and the parsers
// return every Problem they find, joined with errors.Join, so callers can
// errors.As them or simply print the joined error (one problem per line).
type Problem struct {
	File    string
	Line    int // 0 for a missing key or a problem with the whole file
	Key     string
	Message string // what is wrong; how to fix it
}

func (p *Problem) Error() string { return location(p.File, p.Line, p.Key) + p.Message }

// location renders "FILE:LINE: KEY: ", leaving out the parts that are unknown.
func location(file string, line int, key string) string {
	s := file
	if line > 0 {
		s += ":" + strconv.Itoa(line)
	}
	if s != "" {
		s += ": "
	}
	if key != "" {
		s += key + ": "
	}
	return s
}

// Effective returns the effective settings as ordered key/value pairs with
// EFM property names, for logging once at start. Only supported keys are
// listed, so secrets (db.password.encrypted, ...) can never appear.
func (c Config) Effective() [][2]string {
	var out [][2]string
	for _, k := range newKeyIndex().list {
		if k.status != supported {
			continue
		}
		out = append(out, [2]string{k.name, formatField(k.field(&c))})
	}
	return out
}
