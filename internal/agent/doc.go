// Package agent is the long-running pgfm agent: it joins the cluster's
// consensus, observes its local database, publishes what it sees and
// serves the HTTP API.
package agent
