package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrConninfoURI says a conninfo string is a URI, which ParseConninfo does
// not take apart: rewrite primary_conninfo in keyword=value form.
var ErrConninfoURI = errors.New("conninfo is a URI, not keyword=value pairs")

// ParseConninfo parses a libpq keyword/value connection string, as libpq
// does: pairs separated by whitespace, "=" with optional whitespace around
// it, values either bare (a backslash escapes the next character) or in
// single quotes (a backslash escapes the next character, a quote or
// backslash in particular). A keyword given twice keeps its last value.
// order lists the keywords in the order they first appear. Keywords are not
// checked against libpq's list; URIs (postgresql://...) are refused.
func ParseConninfo(s string) (values map[string]string, order []string, err error) {
	trimmed := strings.TrimLeft(s, " \t\n\r\f\v")
	if strings.HasPrefix(trimmed, "postgresql://") || strings.HasPrefix(trimmed, "postgres://") {
		return nil, nil, ErrConninfoURI
	}
	values = map[string]string{}
	i := 0
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			return values, order, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		i = skipSpace(s, i)
		if i >= len(s) || s[i] != '=' {
			return nil, nil, fmt.Errorf("conninfo: missing \"=\" after %q", key)
		}
		if key == "" {
			return nil, nil, fmt.Errorf("conninfo: empty keyword at offset %d", start)
		}
		i = skipSpace(s, i+1)
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return nil, nil, fmt.Errorf("conninfo: unterminated quoted value of %q", key)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' {
					// libpq drops a backslash that ends the string.
					if i++; i == len(s) {
						break
					}
				}
				v.WriteByte(s[i])
				i++
			}
		}
		if _, seen := values[key]; !seen {
			order = append(order, key)
		}
		values[key] = v.String()
	}
}

// FormatConninfo writes values as a libpq keyword/value string with every
// value quoted: the keywords of order first, in that order, then any others
// sorted. Keywords of order missing from values are left out.
func FormatConninfo(values map[string]string, order []string) string {
	var keys []string
	seen := map[string]bool{}
	for _, k := range order {
		if _, ok := values[k]; ok && !seen[k] {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range values {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	var b strings.Builder
	for _, k := range append(keys, rest...) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(quote(values[k]))
	}
	return b.String()
}

// followConninfo re-points an existing primary_conninfo at a new primary:
// host and port replaced (hostaddr, which would win over host, dropped),
// user and application_name replaced when given, every other keyword
// (sslmode, passfile, ...) kept in its place.
func followConninfo(existing, host string, port int, user, appName string) (string, error) {
	values, order, err := ParseConninfo(existing)
	if err != nil {
		return "", err
	}
	delete(values, "hostaddr")
	set := func(k, v string) {
		if v == "" {
			return
		}
		if _, ok := values[k]; !ok {
			order = append(order, k)
		}
		values[k] = v
	}
	set("host", host)
	if port > 0 {
		set("port", strconv.Itoa(port))
	}
	set("user", user)
	set("application_name", appName)
	return FormatConninfo(values, order), nil
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// isSpace is C's isspace in the C locale, which libpq uses.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\f', '\v':
		return true
	}
	return false
}
