// Package postgres holds pgfm's PostgreSQL knowledge: connection strings, the probe
// that observes a server, and running PostgreSQL programs as the database's owner.
package postgres
