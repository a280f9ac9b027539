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

// WithPassword adds libpq's password keyword to connString (from
// ConnString); "" returns it unchanged, so libpq's and pgx's own sources
// (PGPASSWORD, ~/.pgpass) still apply. The result holds a secret: never log
// it, show it in an error, or pass it on a command line (ps shows those);
// Rewind moves it to the program's environment.
func WithPassword(connString, password string) string {
	if password == "" {
		return connString
	}
	if connString == "" {
		return "password=" + quote(password)
	}
	return connString + " password=" + quote(password)
}

// splitPassword takes the password keyword out of a connection string; the
// string is returned unchanged when it has none or cannot be parsed.
func splitPassword(connString string) (rest, password string) {
	values, order, err := ParseConninfo(connString)
	if err != nil {
		return connString, ""
	}
	password, ok := values["password"]
	if !ok {
		return connString, ""
	}
	delete(values, "password")
	return FormatConninfo(values, order), password
}

// withSSLMode adds sslmode to a primary_conninfo that names none, so that
// a standby's replication connection is as protected as the agent's own
// (jdbc.sslmode). An sslmode already there is the user's and is kept;
// "disable" and "" add nothing (libpq's default, prefer, is no weaker).
func withSSLMode(conninfo, sslmode string) (string, error) {
	if sslmode == "" || sslmode == "disable" {
		return conninfo, nil
	}
	values, order, err := ParseConninfo(conninfo)
	if err != nil {
		return "", err
	}
	if _, ok := values["sslmode"]; ok {
		return conninfo, nil
	}
	values["sslmode"] = sslmode
	return FormatConninfo(values, append(order, "sslmode")), nil
}

// quote makes a libpq keyword/value literal: single quotes around the value,
// with backslashes and single quotes escaped by a backslash.
func quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
