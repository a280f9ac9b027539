package config

import (
	"fmt"
	"math"
	"net"
	"net/mail"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/hook"
)

// Value parsers return the parsed value or a problem message written as
// "what is wrong; how to fix it", without the file, line or key, which the
// caller adds.

// setField parses raw for a supported key and stores it in its Config field.
func setField(c *Config, k *keySpec, raw string) string {
	s := strings.TrimSpace(raw) // Java keeps trailing blanks; nobody means them
	switch p := k.field(c).(type) {
	case *string:
		v, msg := parseText(k, s)
		if msg == "" {
			*p = v
		}
		return msg
	case *int:
		v, msg := parseInt(k.kind, s)
		if msg == "" {
			*p = v
		}
		return msg
	case *bool:
		v, msg := parseBool(s)
		if msg == "" {
			*p = v
		}
		return msg
	case *time.Duration:
		v, msg := parseSeconds(s, k.kind == kindSecondsOrZero)
		if msg == "" {
			*p = v
		}
		return msg
	case *uint64:
		v, msg := parseBytes(s)
		if msg == "" {
			*p = v
		}
		return msg
	case *[]string:
		parse := parseEmailList
		if k.kind == kindEndpoints {
			parse = parseEndpoints
		}
		v, msg := parse(s)
		if msg == "" {
			*p = v
		}
		return msg
	case *netip.AddrPort:
		v, msg := parsePeerAddr(s)
		if msg == "" {
			*p = v
		}
		return msg
	case *[]netip.Addr:
		v, msg := parseAddrList(s)
		if msg == "" {
			*p = v
		}
		return msg
	case *netip.Addr:
		v, err := netip.ParseAddr(s)
		if err != nil || v.Zone() != "" {
			return fmt.Sprintf("%q is not an IP address; write one address without a port or zone, e.g. 192.0.2.100 or 2001:db8::100", s)
		}
		*p = v.Unmap()
		return ""
	}
	// Only reachable if the key table is inconsistent; keys_test.go checks it is not.
	return fmt.Sprintf("internal error: no parser for %T", k.field(c))
}

// formatField renders a Config field of kind k the way it is written in
// the file.
func formatField(k kind, v any) string {
	switch p := v.(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		return formatSeconds(*p)
	case *uint64:
		return formatBytes(*p)
	case *[]string:
		if k == kindEndpoints {
			return strings.Join(*p, ",")
		}
		return strings.Join(*p, " ")
	case *netip.AddrPort:
		if !p.IsValid() {
			return ""
		}
		return p.String()
	case *netip.Addr:
		if !p.IsValid() {
			return ""
		}
		return p.String()
	case *[]netip.Addr:
		parts := make([]string, len(*p))
		for i, a := range *p {
			parts[i] = a.String()
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprint(v)
}

func parseText(k *keySpec, s string) (string, string) {
	switch k.kind {
	case kindPath:
		if !filepath.IsAbs(s) {
			return "", fmt.Sprintf("%q is not an absolute path; write the full path starting with /", s)
		}
	case kindSSLMode:
		switch s {
		case "disable", "require", "verify-ca", "verify-full":
		default:
			return "", fmt.Sprintf("%q is not a valid SSL mode; use disable, require, verify-ca or verify-full", s)
		}
	case kindLevel:
		switch u := strings.ToUpper(s); u {
		case "INFO", "WARNING", "SEVERE":
			return u, ""
		}
		return "", fmt.Sprintf("%q is not a notification level; use INFO, WARNING or SEVERE "+
			"(the lowest severity that is sent)", s)
	case kindSyncMode:
		switch l := strings.ToLower(s); l {
		case "off", "on", "strict":
			return l, ""
		}
		return "", fmt.Sprintf("%q is not a synchronous mode; use off (asynchronous), on (synchronous while a "+
			"synchronous standby is healthy) or strict (writes wait when none is)", s)
	case kindCommand:
		return parseCommand(k, s)
	case kindEmail:
		if msg := checkEmail(strings.ReplaceAll(s, "%h", "localhost")); msg != "" {
			return "", msg + ", e.g. " + k.example + " (%h stands for this host's name)"
		}
	}
	return s, ""
}

// parseCommand checks a script's command line the way hook.Runner will
// split it, so that a broken fence script is found when the agent starts,
// not during a failover.
func parseCommand(k *keySpec, s string) (string, string) {
	words, err := hook.Split(s)
	if err != nil {
		return "", fmt.Sprintf("%v; pgfm splits the command line itself, without a shell (see docs/properties.md, Scripts)",
			strings.TrimPrefix(err.Error(), hook.ErrSyntax.Error()+": "))
	}
	if len(words) > 0 && !filepath.IsAbs(words[0]) {
		return "", fmt.Sprintf("program %q is not an absolute path; write its full path, e.g. %s=%s "+
			"(the agent's PATH is not your shell's)", words[0], k.name, k.example)
	}
	return s, ""
}

// checkEmail accepts one bare address (user@domain, no display name).
func checkEmail(s string) string {
	if strings.Contains(s, ",") {
		return fmt.Sprintf("%q has a comma; separate addresses with spaces, not commas", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Sprintf("%q is not an email address; write a bare address such as dba@example.com", s)
	}
	return ""
}

// parseEmailList reads user.email: space-separated addresses.
func parseEmailList(s string) ([]string, string) {
	var out []string
	for _, f := range strings.Fields(s) {
		if msg := checkEmail(f); msg != "" {
			return nil, msg + ", separated by spaces, e.g. dba@example.com ops@example.com"
		}
		out = append(out, f)
	}
	return out, ""
}

// byteUnits are PostgreSQL's memory units (1024-based, case-sensitive as in
// postgresql.conf), largest first for formatBytes.
var byteUnits = []struct {
	name string
	mult uint64
}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}

// parseBytes reads a size of WAL: a whole number of bytes, or a whole number
// followed by B, kB, MB, GB or TB (1024-based), as PostgreSQL writes them.
func parseBytes(s string) (uint64, string) {
	const how = "write a whole number of bytes, or one followed by kB, MB, GB or TB (1024-based, as in postgresql.conf), e.g. 16MB"
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Sprintf("%s is negative; %s", s, how)
	}
	if num == "" || strings.HasPrefix(unit, ".") {
		return 0, fmt.Sprintf("%q is not a whole number of bytes; %s", s, how)
	}
	mult := uint64(0)
	for _, u := range byteUnits {
		if unit == u.name {
			mult = u.mult
		}
	}
	switch {
	case unit == "":
		mult = 1
	case mult == 0:
		for _, u := range byteUnits {
			if strings.EqualFold(unit, u.name) {
				return 0, fmt.Sprintf("unit %q is written %s; units are case-sensitive, as in postgresql.conf", unit, u.name)
			}
		}
		return 0, fmt.Sprintf("%q has an unknown unit %q; %s", s, unit, how)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Sprintf("%s is too large; %s", s, how)
	}
	return n * mult, ""
}

// formatBytes writes n with the largest unit that divides it exactly.
func formatBytes(n uint64) string {
	for _, u := range byteUnits {
		if n != 0 && n%u.mult == 0 && u.mult > 1 {
			return strconv.FormatUint(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10)
}

func parseInt(k kind, s string) (int, string) {
	if k == kindCount && strings.HasPrefix(s, "-") && allDigits(s[1:]) {
		return 0, fmt.Sprintf("%s is negative; use 0 or more", s)
	}
	if !allDigits(s) || len(s) > 9 {
		if k == kindPort {
			return 0, fmt.Sprintf("%q is not a port number; use a whole number from 1 to 65535", s)
		}
		return 0, fmt.Sprintf("%q is not a whole number; use 0 or more", s)
	}
	n, _ := strconv.Atoi(s) // cannot fail: at most 9 digits
	if k == kindPositive && n < 1 {
		return 0, fmt.Sprintf("%d is less than 1; use 1 or more", n)
	}
	if k == kindPort && (n < 1 || n > 65535) {
		return 0, fmt.Sprintf("port %d is outside 1..65535; use a port number in that range", n)
	}
	return n, ""
}

func parseBool(s string) (bool, string) {
	switch strings.ToLower(s) {
	case "true":
		return true, ""
	case "false":
		return false, ""
	}
	return false, fmt.Sprintf("%q is not a boolean; use true or false", s)
}

// maxSeconds keeps a duration far from time.Duration's overflow.
const maxSeconds = 1_000_000_000

// parseSeconds reads EFM-style seconds ("5", "0.5") exactly, without going
// through a float, and refuses units, signs and exponents.
func parseSeconds(s string, zeroOK bool) (time.Duration, string) {
	whole, frac, dot := strings.Cut(s, ".")
	if strings.HasPrefix(s, "-") {
		if zeroOK {
			return 0, fmt.Sprintf("%s is negative; use 0 (off) or a number of seconds greater than 0", s)
		}
		return 0, fmt.Sprintf("%s is negative; use a number of seconds greater than 0", s)
	}
	if !allDigits(whole) || (dot && !allDigits(frac)) {
		return 0, fmt.Sprintf("%q is not a number of seconds; write plain seconds without a unit, e.g. 5 or 0.5", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w >= maxSeconds {
		return 0, fmt.Sprintf("%s seconds is too long; use fewer than %d seconds", s, maxSeconds)
	}
	if len(frac) > 9 {
		frac = frac[:9] // below a nanosecond
	}
	ns, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	d := time.Duration(w)*time.Second + time.Duration(ns)
	if d <= 0 && !(zeroOK && w == 0 && strings.Trim(frac, "0") == "") {
		return 0, fmt.Sprintf("%s is not more than 0; use a number of seconds greater than 0, e.g. 0.5", s)
	}
	return d, ""
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const addrExamples = "e.g. 192.0.2.10:7800 or [2001:db8::10]:7800"

// parsePeerAddr reads an IP:port that other agents must be able to reach
// (bind.address, .nodes entries). It refuses what parses but cannot work
// from another host: unspecified, multicast, link-local IPv6 and zones.
func parsePeerAddr(s string) (netip.AddrPort, string) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, explainAddrPort(s)
	}
	a := ap.Addr()
	if msg := unreachable(a); msg != "" {
		return netip.AddrPort{}, msg
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Sprintf("port 0 is not a usable port; use a fixed port in 1..65535, %s", addrExamples)
	}
	return netip.AddrPortFrom(a.Unmap(), ap.Port()), ""
}

// unreachable explains why other hosts could not use a as a peer address,
// or returns "".
func unreachable(a netip.Addr) string {
	u := a.Unmap()
	switch {
	case u.Is6() && u.IsLinkLocalUnicast():
		return fmt.Sprintf("%s is a link-local IPv6 address (fe80::/10): other nodes cannot reach it without a zone index "+
			"(%%eth0), and a zone index only means something on the host that wrote it; "+
			"use a global or unique-local (fd00::/8) address of this host", a)
	case a.Zone() != "":
		return fmt.Sprintf("%s has a zone index (%%%s), which only means something on this host, so other nodes cannot use it; "+
			"remove the zone and use a global or unique-local (fd00::/8) address", a, a.Zone())
	case u.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address: other nodes need an address they can reach; "+
			"use this host's own IP address, %s", a, addrExamples)
	case u.IsMulticast():
		return fmt.Sprintf("%s is a multicast address; use this host's own unicast IP address, %s", a, addrExamples)
	}
	return ""
}

// explainAddrPort says why s is not IP:port and how to write it.
func explainAddrPort(s string) string {
	if s == "" {
		return "the address is empty; write this host's IP address and port, " + addrExamples
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			return fmt.Sprintf("%s has no port; add one: %s:7800", s, s)
		}
		return fmt.Sprintf("%s has no port; put IPv6 addresses in brackets and add a port: [%s]:7800", s, s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not an IP:port address; write it as %s", s, addrExamples)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Sprintf("%q is a host name, not an IP address; pgfm needs IP:port (names can resolve differently "+
			"on each host), %s", host, addrExamples)
	}
	return fmt.Sprintf("port %q is not a number in 1..65535; %s", port, addrExamples)
}

// parseAddrList reads priority.standbys: space-separated IPs, IP:port
// accepted (EFM users often paste bind addresses) and reduced to the IP.
func parseAddrList(s string) ([]netip.Addr, string) {
	var out []netip.Addr
	for _, f := range strings.Fields(s) {
		a, err := netip.ParseAddr(f)
		if err != nil {
			ap, err2 := netip.ParseAddrPort(f)
			if err2 != nil {
				return nil, fmt.Sprintf("%q is not an IP address; list the standbys' IP addresses separated by spaces, "+
					"e.g. 192.0.2.11 192.0.2.12 or 2001:db8::11", f)
			}
			a = ap.Addr()
		}
		out = append(out, a.Unmap())
	}
	return out, ""
}

// netmaskToPrefix converts EFM 2.0's virtualIp.netmask (255.255.255.0) to
// virtual.ip.prefix (24). A value that is already a prefix length is kept.
func netmaskToPrefix(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if allDigits(v) {
		n, err := strconv.Atoi(v)
		return v, err == nil && n <= 128
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return "", false
	}
	b := a.As4()
	ones, size := net.IPv4Mask(b[0], b[1], b[2], b[3]).Size()
	if size == 0 { // not a contiguous mask
		return "", false
	}
	return strconv.Itoa(ones), true
}
