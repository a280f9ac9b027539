package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pgfm/pgfm/internal/cluster"
)

// JoinRequest is what a new agent sends a member to be admitted.
type JoinRequest struct {
	Cluster     string `json:"cluster"`
	Address     string `json:"address"`      // the joiner's bind IP
	BindAddress string `json:"bind_address"` // host:port, the etcd peer address
	Version     string `json:"version"`
	Witness     bool   `json:"witness"`
}

// JoinResponse tells the admitted agent how to start its etcd member.
type JoinResponse struct {
	Token          string `json:"token"`
	InitialCluster string `json:"initial_cluster"`
	MemberID       uint64 `json:"member_id"`
}

// AddressRequest names a node for allow-node and disallow-node.
type AddressRequest struct {
	Address string `json:"address"`
}

// Message is a plain answer to an admin operation.
type Message struct {
	Message string `json:"message"`
}

// Health is the local agent's view for load balancers.
type Health struct {
	Type       cluster.Type `json:"type"`
	DBUp       bool         `json:"db_up"`
	InRecovery bool         `json:"in_recovery"`
	// HoldsLease: the agent's status is published under a live lease.
	HoldsLease bool `json:"holds_lease"`
}

// Backend is what the server needs from the agent.
type Backend interface {
	Report(ctx context.Context) (cluster.Report, error)
	NodeStatus(ctx context.Context) (cluster.MemberStatus, error)
	Health() Health
	Admit(ctx context.Context, req JoinRequest, remoteIP string) (JoinResponse, error)
	Allow(ctx context.Context, addr string) (string, error)
	Disallow(ctx context.Context, addr string) (string, error)
	StopCluster(ctx context.Context) (string, error)
	Resume(ctx context.Context) (string, error)
}

// Error is an error with the HTTP status the server answers with; its
// message is shown to the user as is, so it says how to fix the problem.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Errorf makes an Error.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// StatusOf is the HTTP status for err: its own, or 500.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}
