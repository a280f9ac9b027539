package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/secret"
)

// Load reads DIR/CLUSTER.properties and DIR/CLUSTER.nodes (a missing .nodes
// file is an empty list), validates them and returns the runtime config and
// the warnings. The error, when not nil, joins every problem found (each a
// *Problem naming file, line and key, what is wrong and how to fix it); the
// warnings are returned in that case too, and the Config is not to be used.
func Load(dir, cluster string) (Config, []Warning, error) {
	if err := ValidateClusterName(cluster); err != nil {
		return Config{}, nil, err
	}
	propsFile := filepath.Join(dir, cluster+".properties")
	nodesFile := filepath.Join(dir, cluster+".nodes")
	data, err := os.ReadFile(propsFile)
	if err != nil {
		return Config{}, nil, &Problem{File: propsFile, Message: fmt.Sprintf(
			"cannot read the properties file: %v; create it (packaging/cluster.properties.sample is a template) "+
				"or check the config directory and the cluster name", err)}
	}
	entries, warns, perr := ParseProperties(data, propsFile)
	c, moreWarns, errs := build(cluster, propsFile, entries)
	warns = append(warns, moreWarns...)
	fileWarns, fileErrs := checkDCSFiles(propsFile, c, entries)
	warns = append(warns, fileWarns...)
	errs = append(errs, fileErrs...)
	sortWarnings(warns)
	errs = append(errs, unjoin(perr)...)
	sortProblems(errs)
	c.Dir, c.PropertiesFile, c.NodesFile = dir, propsFile, nodesFile
	if c.TLS.ClusterKeyFile == "" {
		c.TLS.ClusterKeyFile = filepath.Join(dir, cluster+".key")
	}

	nodes, nerr := ReadNodes(nodesFile)
	c.Nodes = nodes
	if err := errors.Join(append(errs, nerr)...); err != nil {
		return Config{}, warns, err
	}
	return c, warns, nil
}

// ValidateClusterName accepts 1 to 64 ASCII letters, digits, '-', '_' and
// '.', not starting with '.'. The name becomes file names, a systemd
// instance name and an etcd key prefix, so anything else is refused.
func ValidateClusterName(name string) error {
	const allowed = "use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.', e.g. main or prod-2"
	switch {
	case name == "":
		return fmt.Errorf("cluster name is empty; %s", allowed)
	case len(name) > 64:
		return fmt.Errorf("cluster name %q is %d characters long; %s", name, len(name), allowed)
	case name[0] == '.':
		return fmt.Errorf("cluster name %q starts with '.'; %s", name, allowed)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameChar(c) {
			return fmt.Errorf("cluster name %q: character %q at position %d is not allowed; %s", name, rune(c), i+1, allowed)
		}
	}
	return nil
}

func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// setting is one value after aliases are resolved, under its current name.
type setting struct {
	as    string // the name written in the file (an alias or the key itself)
	value string
	line  int
}

// loader accumulates the warnings and problems of one properties file.
type loader struct {
	file  string
	keys  keyIndex
	warns []Warning
	errs  []error
}

func (l *loader) warn(line int, key, format string, args ...any) {
	l.warns = append(l.warns, Warning{File: l.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) fail(line int, key, format string, args ...any) {
	l.errs = append(l.errs, &Problem{File: l.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// build turns parsed entries into a Config. It is pure: no I/O, so the
// validation rules are table-tested without files.
func build(cluster, file string, entries []Entry) (Config, []Warning, []error) {
	l := &loader{file: file, keys: newKeyIndex()}
	set := l.resolve(entries)
	c := Config{Cluster: cluster}
	lines := make(map[string]int)
	for i := range l.keys.list {
		k := &l.keys.list[i]
		s, ok := set[k.name]
		switch {
		case k.status == supported:
			l.apply(&c, k, cluster, s, ok)
			if ok {
				lines[k.name] = s.line
			}
		case k.status == notImplemented && ok && !k.isOff(s.value):
			// A blank value, or one like auto.rewind=false, asks for the
			// feature to be off, which is what pgfm does: no warning.
			msg := k.name + " is not implemented yet in pgfm; it is ignored"
			if k.note != "" {
				msg += ": " + k.note
			}
			l.warn(s.line, s.as, "%s", msg)
		}
	}
	l.checkRequired(c, set)
	l.checkTogether(c, lines)
	l.checkPassword(&c, cluster, lines)
	l.checkDCS(c, set)
	if c.DB.ConfigDir == "" {
		c.DB.ConfigDir = c.DB.DataDir
	}
	c.DCS.Endpoints = withScheme(c.DCS.Endpoints, c.DCS.tls())
	sortProblems(l.errs)
	return c, l.warns, l.errs
}

// resolve classifies every entry and returns the values by current key
// name: unknown keys are errors, not-applicable keys and aliases warn,
// alias values move to their current name unless that is set too.
func (l *loader) resolve(entries []Entry) map[string]setting {
	set := make(map[string]setting)
	var aliases []Entry
	for _, e := range entries {
		k, ok := l.keys.byName[e.Key]
		switch {
		case !ok:
			l.unknown(e)
		case k.status == notApplicable:
			l.warn(e.Line, e.Key, "%s does not apply to pgfm (%s); remove it", e.Key, k.note)
		case k.status == alias:
			aliases = append(aliases, e)
		default:
			set[e.Key] = setting{as: e.Key, value: e.Value, line: e.Line}
		}
	}
	for _, e := range aliases {
		l.applyAlias(set, e)
	}
	return set
}

// applyAlias moves an old name's value to the current name. Entries come in
// file order, so when two old names of one key are set the later one wins.
func (l *loader) applyAlias(set map[string]setting, e Entry) {
	k := l.keys.byName[e.Key]
	if cur, ok := set[k.target]; ok && cur.as == k.target {
		l.warn(e.Line, e.Key, "%s is EFM's older name for %s; %s is also set (line %d) and wins; remove this line",
			e.Key, k.target, k.target, cur.line)
		return
	}
	value := e.Value
	if k.convert != nil {
		v, ok := k.convert(value)
		if !ok {
			l.warn(e.Line, e.Key, "%s is EFM's older name for %s; %q cannot be converted to it, so it is ignored; "+
				"replace this line with %s=<prefix length>, e.g. %s=24", e.Key, k.target, strings.TrimSpace(value), k.target, k.target)
			return
		}
		value = v
	}
	l.warn(e.Line, e.Key, "%s is EFM's older name for %s; rename it", e.Key, k.target)
	set[k.target] = setting{as: e.Key, value: value, line: e.Line}
}

// unknown reports a key pgfm does not know, suggesting a close known one.
func (l *loader) unknown(e Entry) {
	if e.Key == "" {
		l.fail(e.Line, "", "a value without a key; write KEY=VALUE, or start the line with # to make it a comment")
		return
	}
	msg := "unknown property"
	if s := suggest(e.Key, l.keys.list); s != "" {
		msg += "; did you mean " + s + "?"
	}
	l.fail(e.Line, e.Key, "%s; correct or remove it (pgfm, like EFM 5.1 and later, refuses unknown names; "+
		"see docs/properties.md)", msg)
}

// apply sets a supported key from the file, or from its default.
func (l *loader) apply(c *Config, k *keySpec, cluster string, s setting, ok bool) {
	if ok && strings.TrimSpace(s.value) != "" {
		if msg := setField(c, k, s.value); msg != "" {
			l.fail(s.line, s.as, "%s", msg)
		}
		return
	}
	if k.def == "" {
		return
	}
	if msg := setField(c, k, strings.ReplaceAll(k.def, "CLUSTER", cluster)); msg != "" {
		l.fail(0, k.name, "internal error: bad default %q: %s", k.def, msg) // keys_test.go keeps this unreachable
	}
}

// checkRequired reports required keys that are missing or blank.
func (l *loader) checkRequired(c Config, set map[string]setting) {
	for _, k := range l.keys.list {
		if k.need == optional || (k.need == databaseNode && c.IsWitness) {
			continue
		}
		where := "every node"
		if k.need == databaseNode {
			where = "database nodes (is.witness=false)"
		}
		s, ok := set[k.name]
		switch {
		case !ok:
			l.fail(0, k.name, "missing; it is required on %s; add %s=... to %s, e.g. %s=%s",
				where, k.name, l.file, k.name, k.example)
		case strings.TrimSpace(s.value) == "":
			l.fail(s.line, s.as, "empty; it is required on %s; give it a value, e.g. %s=%s", where, k.name, k.example)
		}
	}
}

// MinNodeTimeout is the shortest lease etcd grants with this election
// timeout: ceil(1.5 × election timeout) in whole seconds.
func MinNodeTimeout(election time.Duration) time.Duration {
	return time.Duration(math.Ceil(1.5*election.Seconds())) * time.Second
}

// checkVIP validates the virtual IP settings together.
func (l *loader) checkVIP(c Config, lines map[string]int) {
	if !c.VirtualIP.IsValid() {
		return
	}
	max := 32
	if c.VirtualIP.Is6() {
		max = 128
	}
	switch {
	case c.VirtualIPInterface == "":
		l.fail(lines["virtual.ip"], "virtual.ip.interface", "is needed with virtual.ip=%s: add virtual.ip.interface=IFACE, the network interface that carries the address (e.g. eth0)", c.VirtualIP)
	case c.VirtualIP.Is6() && c.VirtualIP.IsLinkLocalUnicast():
		l.fail(lines["virtual.ip"], "virtual.ip", "%s is a link-local IPv6 address, which clients cannot reach without a zone; use a global or unique-local (fd00::/8) address", c.VirtualIP)
	case c.VirtualIPPrefix > max:
		l.fail(lines["virtual.ip.prefix"], "virtual.ip.prefix", "%d is too long for %s; use 1 to %d", c.VirtualIPPrefix, c.VirtualIP, max)
	}
}

// checkTogether applies the rules that involve more than one key.
func (l *loader) checkTogether(c Config, lines map[string]int) {
	if c.BindAddress.IsValid() && c.AdminPort == int(c.BindAddress.Port()) {
		l.fail(lines["admin.port"], "admin.port", "%d is also bind.address's port (%s); "+
			"the admin API and the cluster traffic need different ports; use another admin.port, e.g. 7809, "+
			"or another bind.address port, e.g. 7800", c.AdminPort, c.BindAddress)
	}
	if min := MinNodeTimeout(c.ElectionTimeout); c.NodeTimeout > 0 && c.ElectionTimeout > 0 && c.NodeTimeout < min {
		l.fail(lines["node.timeout"], "node.timeout", "%s seconds is too short; use %s or more: it is the consensus lease TTL, "+
			"which etcd cannot make shorter than 1.5 × its election timeout (dcs.election.timeout=%s), in whole seconds",
			formatSeconds(c.NodeTimeout), formatSeconds(min), formatSeconds(c.ElectionTimeout))
	}
	if c.NodeTimeout > 0 && c.ElectionTimeout > 0 && c.NodeTimeout >= MinNodeTimeout(c.ElectionTimeout) {
		if ok, need := ridesOutElection(c.NodeTimeout, c.ElectionTimeout); !ok {
			ttl := LeaseTTL(c.NodeTimeout, c.ElectionTimeout)
			leader, smaller := "the host of the etcd leader (a standby or a witness)", "a smaller dcs.election.timeout"
			if c.DCS.External() {
				leader, smaller = "the etcd leader (a member of the external etcd cluster)",
					"a smaller election timeout on the etcd cluster (and dcs.election.timeout with it)"
			}
			l.warn(lines["node.timeout"], "node.timeout", "%s seconds leaves a primary %s of lease after its last renewal, "+
				"less than the %s an etcd leader election can take with dcs.election.timeout=%s: when %s "+
				"fails, the primary may fence itself and cause a failover; use node.timeout=%s or more, or %s",
				formatSeconds(c.NodeTimeout), LeaderLossTolerance(ttl), ElectionTime(c.ElectionTimeout),
				formatSeconds(c.ElectionTimeout), leader, formatSeconds(need), smaller)
		}
	}
	l.checkVIP(c, lines)
	if t := c.TLS; (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "") && (t.CAFile == "" || t.CertFile == "" || t.KeyFile == "") {
		l.fail(lines["tls.ca.file"], "tls.ca.file", "tls.ca.file, tls.cert.file and tls.key.file go together (your own PKI: the CA, "+
			"this node's certificate for its bind.address IP, and its key); set all three, or none to use the cluster key file (%s)", c.TLS.ClusterKeyFile)
	}
	if c.PrimaryHealthCheckPort > 65535 {
		l.fail(lines["primary.health.check.port"], "primary.health.check.port", "%d is not a port; use 1 to 65535, or leave it empty to turn the listener off", c.PrimaryHealthCheckPort)
	}
	if c.SyncMode != "" && c.SyncMode != "off" {
		for _, k := range []string{"reconfigure.num.sync", "reconfigure.num.sync.max", "reconfigure.sync.primary"} {
			if line, ok := lines[k]; ok {
				l.warn(line, k, "synchronous.mode=%s manages synchronous_standby_names itself, so %s is ignored; "+
					"remove it, or set synchronous.mode=off to manage synchronous_standby_names yourself (EFM's way)", c.SyncMode, k)
			}
		}
	}
	if c.ElectionTimeout > 0 && (c.ElectionTimeout < 100*time.Millisecond || c.ElectionTimeout > 50*time.Second) {
		l.fail(lines["dcs.election.timeout"], "dcs.election.timeout", "%s seconds is out of range; use 0.1 to 50 (default 1)", formatSeconds(c.ElectionTimeout))
	}
}

// checkPassword replaces db.password.encrypted's value with the password
// it holds. As in EFM, script.db.password wins over it. EFM's own form
// cannot be read (its algorithm is not public): that is a warning, not an
// error, so that an EFM file still loads; the agent then connects without
// a password, and a refusal names the property.
func (l *loader) checkPassword(c *Config, cluster string, lines map[string]int) {
	const key = "db.password.encrypted"
	raw := c.DB.Password
	c.DB.Password = ""
	switch {
	case raw == "":
	case c.DB.PasswordScript != "":
		l.warn(lines[key], key, "ignored: script.db.password is set and gives the password (EFM does the same); remove one of the two")
	case secret.IsEFM(raw):
		l.warn(lines[key], key, "this is EFM's encrypted form, which pgfm cannot read, so it is ignored and the agent connects "+
			"without a password (~/.pgpass of the agent's user still applies); run `pgfm encrypt %s` and replace the value "+
			"with the one it prints", cluster)
	default:
		pw, err := secret.Decrypt(cluster, raw)
		if err != nil {
			l.fail(lines[key], key, "cannot decrypt it: %v", err)
			return
		}
		c.DB.Password = pw
	}
	if c.DB.PasswordScriptEncrypted && c.DB.PasswordScript == "" {
		l.warn(lines["script.db.password.encrypted"], "script.db.password.encrypted",
			"has no effect without script.db.password; remove it, or set script.db.password to a script that prints a value of `pgfm encrypt %s`", cluster)
	}
}

// sortProblems orders problems by line, missing keys (line 0) last, so the
// user reads them in file order. The sort is stable: same-line problems
// keep the order the table gave them.
func sortProblems(errs []error) {
	slices.SortStableFunc(errs, func(a, b error) int {
		return cmp.Compare(problemOrder(a), problemOrder(b))
	})
}

func problemOrder(err error) int {
	var p *Problem
	if errors.As(err, &p) && p.Line > 0 {
		return p.Line
	}
	return int(^uint(0) >> 1)
}

// unjoin returns the errors an errors.Join result holds, or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func sortWarnings(ws []Warning) {
	slices.SortStableFunc(ws, func(a, b Warning) int { return cmp.Compare(a.Line, b.Line) })
}

// isOff reports whether v, set on a not-implemented key, asks for the
// feature to be off (blank, or one of the key's off values).
func (k *keySpec) isOff(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" {
		return true
	}
	for _, o := range k.off {
		if strings.EqualFold(v, o) {
			return true
		}
	}
	return false
}
