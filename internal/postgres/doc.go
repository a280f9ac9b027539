// Package postgres holds pgfm's PostgreSQL knowledge: connection strings, the probe
// that observes a server, running PostgreSQL programs as the database's owner, and
// the idempotent control steps of a failover (promote, stop, start, follow, watch).
package postgres
