// Package httpapi serves the agent's HTTP interface on admin.port: health
// endpoints for load balancers, the status and admin operations the CLI
// uses, and the join request of new members; it also holds the client.
package httpapi
