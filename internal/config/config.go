package config

import (
	"fmt"
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
	// default 1s; the heartbeat is a tenth of it). pgfm's own. With an
	// external etcd (DCS.External) it configures nothing: it must be that
	// cluster's election timeout, and only the node.timeout check uses it.
	ElectionTimeout time.Duration

	// DCS is how the agent reaches an external etcd cluster (pgfm's own
	// dcs.* keys); empty: the agents run their own embedded etcd members.
	DCS DCSConfig

	// TLS is how the agents prove to each other (etcd peers, joins, the
	// admin API) that they belong to this cluster (docs/security.md).
	TLS TLSConfig
	// AdminMaxConnections caps the admin.port connections served at once
	// (admin.max.connections, default 64, pgfm's own).
	AdminMaxConnections int
	// EncryptAgentMessages is encrypt.agent.messages as written (default
	// true). It changes nothing: pgfm always authenticates and encrypts
	// agent traffic with TLS (docs/security.md), so false is accepted for
	// EFM files' sake, without a warning.
	EncryptAgentMessages bool

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
	// AutoRewind and AutoBasebackup (EFM 5): rebuild this node's old
	// primary as a standby of the cluster's primary, with pg_rewind (and
	// pg_basebackup when that cannot), instead of leaving it stopped.
	AutoRewind     bool
	AutoBasebackup bool
	// SyncMode is synchronous.mode: off (default, asynchronous), on or
	// strict; SyncNodeCount is synchronous.node.count, default 1 (the k
	// of ANY k (...)). See package syncrep.
	SyncMode      string
	SyncNodeCount int
	// EFM's synchronous replication, for a synchronous_standby_names the
	// user manages (synchronous.mode=off): every CheckNumSyncPeriod the
	// primary's agent compares it with the standbys that stream, and
	// lowers or raises its number (reconfigure.num.sync,
	// reconfigure.num.sync.max) or clears it (reconfigure.sync.primary).
	ReconfigureNumSync     bool
	ReconfigureNumSyncMax  int
	ReconfigureSyncPrimary bool
	CheckNumSyncPeriod     time.Duration

	// Scripts: command lines as written (hook.Split syntax, absolute program
	// path, EFM placeholders left for hook.Runner to expand); "" = none.
	ScriptFence           string        // script.fence
	ScriptPostPromotion   string        // script.post.promotion
	ScriptDBFailure       string        // script.db.failure
	ScriptPrimaryIsolated string        // script.primary.isolated
	ScriptResumed         string        // script.resumed
	ScriptTimeout         time.Duration // script.timeout, default 30s (pgfm's own)
	// ScriptUser runs every script when the agent runs as root
	// (script.user, pgfm's own); "" = db.service.owner. Never root unless
	// written so.
	ScriptUser string

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

	// Password is db.password.encrypted, decrypted by Load with the
	// cluster name (package secret); "" when not set, or when
	// script.db.password is set (EFM ignores it then too). Never logged:
	// String hides it and Effective leaves it out.
	Password string
	// PasswordScript is script.db.password: a command line whose standard
	// output is the password (EFM 5.4), run at agent start and again after
	// an authentication failure, at most every PasswordRetry
	// (script.db.password.retry, default 10s); "" = none.
	PasswordScript string
	PasswordRetry  time.Duration
	// PasswordScriptEncrypted (script.db.password.encrypted, default
	// false): the script prints a value of `pgfm encrypt`, not the
	// password itself.
	PasswordScriptEncrypted bool
}

// String prints the settings with the password hidden, so that printing a
// Config (%v, %+v, slog) never shows it.
func (d DB) String() string {
	pw := ""
	if d.Password != "" {
		pw = "(hidden)"
	}
	return fmt.Sprintf("{User:%s Port:%d Database:%s ServiceOwner:%s Bin:%s DataDir:%s ConfigDir:%s SSLMode:%s "+
		"Password:%s PasswordScript:%s PasswordRetry:%s PasswordScriptEncrypted:%t}",
		d.User, d.Port, d.Database, d.ServiceOwner, d.Bin, d.DataDir, d.ConfigDir, d.SSLMode,
		pw, d.PasswordScript, d.PasswordRetry, d.PasswordScriptEncrypted)
}

// GoString hides the password from %#v too.
func (d DB) GoString() string { return "config.DB" + d.String() }

// TLSConfig holds the cluster's credentials. By default they come from the
// cluster key file (KeyFile: the cluster CA's certificate and key, created
// by the agent that starts the cluster and copied to every other node);
// each agent issues its own certificate from it. With CAFile, CertFile and
// KeyFile all set, the user's own PKI supplies them instead.
type TLSConfig struct {
	ClusterKeyFile string // cluster.key.file, default DIR/CLUSTER.key
	CAFile         string // tls.ca.file: CA certificate (PEM) that signs every node's certificate
	CertFile       string // tls.cert.file: this node's certificate (PEM), valid for bind.address's IP
	KeyFile        string // tls.key.file: its private key (PEM)
}

// OwnPKI reports whether the user supplies the certificates (tls.*).
func (t TLSConfig) OwnPKI() bool { return t.CAFile != "" }

// DCSConfig is how the agent reaches an external etcd cluster that others
// run and that many pgfm clusters may share, each under /pgfm/CLUSTER/.
// Load checks it is whole: TLS files and user only with Endpoints, Cert with
// Key, User with Password, TLS files only with https:// endpoints.
type DCSConfig struct {
	// Endpoints are dcs.endpoints, each normalised to scheme://host:port
	// (IPv6 in brackets), all with one scheme: http://, or https:// when
	// dcs.cacert, dcs.cert or dcs.key is set, unless written otherwise.
	Endpoints []string
	CACert    string // dcs.cacert: CA certificate (PEM) of the etcd servers; "" = the system's roots
	Cert      string // dcs.cert: client certificate (PEM), always with Key
	Key       string // dcs.key: the client certificate's private key (PEM)
	User      string // dcs.user: etcd user, always with Password
	Password  string // dcs.password: in clear in the properties file; never logged
}

// External reports whether the agent uses an external etcd cluster instead
// of running an embedded member: dcs.endpoints is set.
func (d DCSConfig) External() bool { return len(d.Endpoints) > 0 }

// String prints the settings with the password hidden, so that printing a
// Config (%v, %+v, slog) never shows it.
func (d DCSConfig) String() string {
	pw := ""
	if d.Password != "" {
		pw = "(hidden)"
	}
	return fmt.Sprintf("{Endpoints:%v CACert:%s Cert:%s Key:%s User:%s Password:%s}",
		d.Endpoints, d.CACert, d.Cert, d.Key, d.User, pw)
}

// GoString hides the password from %#v too.
func (d DCSConfig) GoString() string { return "config.DCSConfig" + d.String() }

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
// listed, and not secrets (dcs.password, db.password.encrypted), so that
// no password can appear.
func (c Config) Effective() [][2]string {
	var out [][2]string
	for _, k := range newKeyIndex().list {
		if k.status != supported || k.kind == kindSecret || k.kind == kindEncrypted {
			continue
		}
		out = append(out, [2]string{k.name, formatField(k.kind, k.field(&c))})
	}
	return out
}
