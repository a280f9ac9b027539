// Package testenv is the integration-test harness: real PostgreSQL clusters on
// loopback addresses, temporary directories and polling helpers, all cleaned up
// when the test ends.
package testenv
