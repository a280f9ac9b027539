package postgres

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// ConnString builds a libpq keyword/value connection string. Every value is
// quoted, so hosts (IPv6 included), users and database names need no care from
// the caller. Empty values are left out, so libpq's defaults apply. The connect
// timeout is rounded up to whole seconds, libpq's unit; zero leaves it out.
// The client encoding is always UTF-8, whatever the server's encoding.
func ConnString(host string, port int, user, database, sslmode string, connectTimeout time.Duration) string {
	var b strings.Builder
	add := func(key, value string) {
		if value == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(quote(value))
	}
	add("host", host)
	if port > 0 {
		add("port", strconv.Itoa(port))
	}
	add("user", user)
	add("dbname", database)
	add("sslmode", sslmode)
	if connectTimeout > 0 {
		add("connect_timeout", strconv.Itoa(int(math.Ceil(connectTimeout.Seconds()))))
	}
	// The server's encoding may be anything (SQL_ASCII, LATIN1, ...): ask
	// for UTF-8, which pgx's simple protocol requires and Go strings are.
	add("client_encoding", "UTF8")
	return b.String()
}

// quote makes a libpq keyword/value literal: single quotes around the value,
// with backslashes and single quotes escaped by a backslash.
func quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
