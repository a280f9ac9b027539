package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// External etcd (dcs.*): parsing dcs.endpoints, the rules between the dcs
// keys, and the checks of the TLS files, which need the file system and so
// run in Load, not in build.

const endpointsHow = "write the etcd client URLs separated by commas, e.g. " +
	"https://etcd1.example.com:2379,https://etcd2.example.com:2379 or 192.0.2.31:2379,[fd00::31]:2379"

// parseEndpoints reads dcs.endpoints: comma-separated [scheme://]host:port.
// An explicit scheme is kept (lower case); an endpoint without one stays
// host:port until build gives it the default (withScheme), which depends
// on other keys.
func parseEndpoints(s string) ([]string, string) {
	parts := strings.Split(s, ",")
	var out []string
	seen := make(map[string]string) // host:port → as written
	var http, https string          // first endpoint written with each scheme
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Sprintf("endpoint %d of %d is empty; separate the endpoints with single commas, "+
				"with none at either end; %s", i+1, len(parts), endpointsHow)
		}
		scheme, hostport, msg := parseEndpoint(p, i+1)
		if msg != "" {
			return nil, msg
		}
		if first, ok := seen[hostport]; ok {
			if first == p {
				return nil, fmt.Sprintf("%s is listed twice; list each etcd member once", p)
			}
			return nil, fmt.Sprintf("%s and %s are the same endpoint; list each etcd member once", first, p)
		}
		seen[hostport] = p
		switch scheme {
		case "http":
			http = firstOf(http, p)
		case "https":
			https = firstOf(https, p)
		}
		if scheme != "" {
			hostport = scheme + "://" + hostport
		}
		out = append(out, hostport)
	}
	if http != "" && https != "" {
		return nil, fmt.Sprintf("mixes http:// (%s) and https:// (%s); the etcd client uses one TLS setting for "+
			"all endpoints: write the same scheme on every one", http, https)
	}
	return out, ""
}

// firstOf returns first unless it is empty, then p.
func firstOf(first, p string) string {
	if first != "" {
		return first
	}
	return p
}

// parseEndpoint checks one endpoint p, the n-th, and returns its scheme
// ("" when not written) and its normalised host:port.
func parseEndpoint(p string, n int) (scheme, hostport, msg string) {
	if strings.Contains(p, "@") {
		// Not quoted back, here or below: it may hold a password.
		return "", "", fmt.Sprintf("endpoint %d has a user name or password in it (before @); "+
			"remove it and set dcs.user and dcs.password instead", n)
	}
	if strings.ContainsAny(p, " \t") {
		return "", "", fmt.Sprintf("%q has a blank in it; separate the endpoints with commas, not blanks; %s", p, endpointsHow)
	}
	rest := p
	if before, after, ok := strings.Cut(p, "://"); ok {
		scheme, rest = strings.ToLower(before), after
		if scheme != "http" && scheme != "https" {
			return "", "", fmt.Sprintf("%q has the scheme %q; use http:// or https://, or leave the scheme out "+
				"(etcd's gRPC endpoints are http or https URLs)", p, before+"://")
		}
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		fix := rest[:i]
		if scheme != "" {
			fix = scheme + "://" + fix
		}
		return "", "", fmt.Sprintf("%q has a path (%q); an endpoint is only [http:// or https://]host:port: write %s",
			p, rest[i:], fix)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		switch {
		case strings.Count(rest, ":") >= 2 && !strings.HasPrefix(rest, "["):
			return "", "", fmt.Sprintf("%q: put an IPv6 address in brackets, followed by the port, "+
				"e.g. [fd00::31]:2379 or https://[fd00::31]:2379", p)
		case !strings.Contains(rest, ":") || strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]"):
			return "", "", fmt.Sprintf("%q has no port; add etcd's client port, e.g. %s:2379", p, p)
		}
		return "", "", fmt.Sprintf("%q is not [http:// or https://]host:port; %s", p, endpointsHow)
	}
	if host == "" {
		return "", "", fmt.Sprintf("%q has no host; write the etcd member's host name or IP address before the port, "+
			"e.g. etcd1.example.com:2379", p)
	}
	if !allDigits(port) || len(port) > 5 {
		return "", "", fmt.Sprintf("%q: port %q is not a number in 1..65535; etcd's client port is usually 2379", p, port)
	}
	pn, _ := strconv.Atoi(port) // cannot fail: at most 5 digits
	if pn < 1 || pn > 65535 {
		return "", "", fmt.Sprintf("%q: port %d is outside 1..65535; etcd's client port is usually 2379", p, pn)
	}
	host, msg = endpointHost(p, host)
	if msg != "" {
		return "", "", msg
	}
	return scheme, net.JoinHostPort(host, strconv.Itoa(pn)), ""
}

// endpointHost checks the host of endpoint p: an IP address (canonical
// form) or a host name (lower case). Host names are fine here, unlike in
// bind.address: the etcd servers' certificates name them.
func endpointHost(p, host string) (string, string) {
	if a, err := netip.ParseAddr(host); err == nil {
		switch {
		case a.Zone() != "":
			return "", fmt.Sprintf("%q: %s has a zone index (%%%s), which an etcd URL cannot carry; "+
				"use a global or unique-local (fd00::/8) address", p, a, a.Zone())
		case a.Unmap().IsUnspecified():
			return "", fmt.Sprintf("%q: %s is the unspecified address; write an etcd member's own address", p, a)
		case a.Unmap().IsMulticast():
			return "", fmt.Sprintf("%q: %s is a multicast address; write an etcd member's own address", p, a)
		}
		return a.Unmap().String(), ""
	}
	if strings.Contains(host, ":") || strings.Trim(host, "0123456789.") == "" || !isHostName(host) {
		return "", fmt.Sprintf("%q: %q is neither an IP address nor a host name; %s", p, host, endpointsHow)
	}
	return strings.ToLower(host), ""
}

// isHostName reports whether h is a DNS name: dot-separated labels of 1 to
// 63 letters, digits, '-' or '_', not starting or ending with '-'.
func isHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isNameChar(c) || c == '.' {
				return false
			}
		}
	}
	return true
}

// tls reports whether any TLS file is set, which makes https:// the default.
func (d DCSConfig) tls() bool { return d.CACert != "" || d.Cert != "" || d.Key != "" }

// tlsKeys names the TLS keys that are set: "dcs.cacert and dcs.cert".
func (d DCSConfig) tlsKeys() string {
	var keys []string
	for _, k := range []struct{ name, v string }{{"dcs.cacert", d.CACert}, {"dcs.cert", d.Cert}, {"dcs.key", d.Key}} {
		if k.v != "" {
			keys = append(keys, k.name)
		}
	}
	if len(keys) < 2 {
		return strings.Join(keys, "")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1]
}

// withScheme gives the endpoints written without a scheme the default one:
// https:// when a TLS file is set, else http://. It returns a new slice.
func withScheme(endpoints []string, tls bool) []string {
	if endpoints == nil {
		return nil
	}
	def := "http://"
	if tls {
		def = "https://"
	}
	out := make([]string, len(endpoints))
	for i, e := range endpoints {
		if !strings.Contains(e, "://") {
			e = def + e
		}
		out[i] = e
	}
	return out
}

// dcsKeys are the keys that only mean something with dcs.endpoints.
var dcsKeys = []string{"dcs.cacert", "dcs.cert", "dcs.key", "dcs.user", "dcs.password"}

// checkDCS applies the rules between the dcs.* keys, on the endpoints as
// written (before withScheme).
func (l *loader) checkDCS(c Config, set map[string]setting) {
	d := c.DCS
	given := func(key string) (setting, bool) {
		s, ok := set[key]
		return s, ok && strings.TrimSpace(s.value) != ""
	}
	if !d.External() {
		if _, ok := given("dcs.endpoints"); ok {
			return // dcs.endpoints did not parse: that error says enough
		}
		for _, key := range dcsKeys {
			if s, ok := given(key); ok {
				l.fail(s.line, s.as, "is only used with an external etcd cluster; set dcs.endpoints to its client URLs, "+
					"or remove this line (the agents' embedded etcd members need no %s)", key)
			}
		}
		return
	}
	line := func(key string) int { return set[key].line }
	switch {
	case d.Cert != "" && d.Key == "":
		l.fail(line("dcs.cert"), "dcs.cert", "is set but dcs.key is not; add dcs.key=PATH, the private key (PEM) of "+
			"this client certificate, e.g. dcs.key=/etc/pgfm/etcd-client-key.pem, or remove dcs.cert")
	case d.Key != "" && d.Cert == "":
		l.fail(line("dcs.key"), "dcs.key", "is set but dcs.cert is not; add dcs.cert=PATH, the client certificate (PEM) "+
			"of this private key, e.g. dcs.cert=/etc/pgfm/etcd-client.pem, or remove dcs.key")
	}
	var http, https, bare string
	for _, e := range d.Endpoints {
		switch {
		case strings.HasPrefix(e, "http://"):
			http = firstOf(http, e)
		case strings.HasPrefix(e, "https://"):
			https = firstOf(https, e)
		default:
			bare = firstOf(bare, e)
		}
	}
	switch {
	case d.tls() && http != "":
		l.fail(line("dcs.endpoints"), "dcs.endpoints", "%s is plain http://, but %s ask%s for TLS; write https:// "+
			"or leave the scheme out (it is then https://), or remove %s", http, d.tlsKeys(), plural(d.tlsKeys()), d.tlsKeys())
	case !d.tls() && https != "" && bare != "":
		l.fail(line("dcs.endpoints"), "dcs.endpoints", "%s has no scheme, so it is http:// (no dcs.cacert, dcs.cert or "+
			"dcs.key is set), but %s is https://; write https:// on every endpoint, or set dcs.cacert", bare, https)
	}
	switch {
	case d.User != "" && d.Password == "":
		l.fail(line("dcs.user"), "dcs.user", "is set but dcs.password is not; etcd authentication needs both: "+
			"add dcs.password=PASSWORD, or remove dcs.user")
	case d.Password != "" && d.User == "":
		l.fail(line("dcs.password"), "dcs.password", "is set but dcs.user is not; add dcs.user=NAME, "+
			"the etcd user pgfm logs in as, or remove dcs.password")
	}
}

// plural returns "" when keys (from tlsKeys) names several keys, else "s".
func plural(keys string) string {
	if strings.Contains(keys, " and ") {
		return ""
	}
	return "s"
}

// checkDCSFiles checks, for an external etcd, that the TLS files exist and
// can be read, and warns when the properties file holding dcs.password can
// be read by others. entries give the lines (the last one of a key wins,
// as in build).
func checkDCSFiles(file string, c Config, entries []Entry) ([]Warning, []error) {
	line := func(key string) int {
		n := 0
		for _, e := range entries {
			if e.Key == key {
				n = e.Line
			}
		}
		return n
	}
	var warns []Warning
	var errs []error
	if c.DCS.Password != "" {
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			warns = append(warns, Warning{File: file, Line: line("dcs.password"), Key: "dcs.password", Message: fmt.Sprintf(
				"the file holds a password but its group or others may read or write it (mode %04o); "+
					"make it readable only by the agent's user: chmod 600 %s", fi.Mode().Perm(), file)})
		}
	}
	if !c.DCS.External() {
		return warns, errs
	}
	for _, f := range []struct{ key, path, what string }{
		{"dcs.cacert", c.DCS.CACert, "the CA certificate (PEM) that signed the etcd servers' certificates"},
		{"dcs.cert", c.DCS.Cert, "this agent's etcd client certificate (PEM)"},
		{"dcs.key", c.DCS.Key, "the private key (PEM) of dcs.cert"},
	} {
		if f.path == "" {
			continue
		}
		if msg := checkReadable(f.path, f.what); msg != "" {
			errs = append(errs, &Problem{File: file, Line: line(f.key), Key: f.key, Message: msg})
		}
	}
	return warns, errs
}

// checkReadable says why the file at path cannot serve as what, or "".
func checkReadable(path, what string) string {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist; give the path of %s", path, what)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s cannot be read: permission denied; make it readable by the agent's user "+
			"(and by no one else if it is a private key)", path)
	case err != nil:
		return fmt.Sprintf("%s cannot be read: %v; give the path of %s", path, err, what)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return fmt.Sprintf("%s cannot be read: %v; give the path of %s", path, err, what)
	case fi.IsDir():
		return fmt.Sprintf("%s is a directory; give the path of %s, a file", path, what)
	}
	return ""
}
