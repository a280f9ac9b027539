package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pgfm/pgfm/internal/cluster"
)

// Client talks to one agent.
type Client struct {
	BaseURL string // http://host:port
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client of the agent at baseURL. localIP, when set,
// is the source address of requests (a joining agent proves its address).
func NewClient(baseURL, token, localIP string, timeout time.Duration) *Client {
	d := &net.Dialer{Timeout: timeout}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	return &Client{BaseURL: baseURL, Token: token, HTTP: &http.Client{Transport: tr, Timeout: timeout}}
}

// WithTLS makes c speak TLS with conf (this node's certificate, the
// cluster's CA) to an https:// address of the same agent.
func (c *Client) WithTLS(conf *tls.Config) *Client {
	c.HTTP.Transport.(*http.Transport).TLSClientConfig = conf
	c.BaseURL = strings.Replace(c.BaseURL, "http://", "https://", 1)
	return c
}

// UnreachableError: the agent did not answer at all.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("no agent answers at %s: %v", e.URL, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return &UnreachableError{URL: c.BaseURL, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &UnreachableError{URL: c.BaseURL, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		var m Message
		if json.Unmarshal(data, &m) != nil || m.Message == "" {
			m.Message = fmt.Sprintf("agent answered %s", resp.Status)
		}
		return &Error{Status: resp.StatusCode, Msg: m.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agent at %s: bad answer: %w", c.BaseURL, err)
	}
	return nil
}

// Report fetches the cluster report.
func (c *Client) Report(ctx context.Context) (cluster.Report, error) {
	var r cluster.Report
	err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, &r)
	return r, err
}

// NodeStatus fetches the local node's status.
func (c *Client) NodeStatus(ctx context.Context) (cluster.MemberStatus, error) {
	var st cluster.MemberStatus
	err := c.do(ctx, http.MethodGet, "/v1/node", nil, &st)
	return st, err
}

// Replication fetches the standbys' replication from the primary.
func (c *Client) Replication(ctx context.Context) (ReplicationReport, error) {
	var r ReplicationReport
	err := c.do(ctx, http.MethodGet, "/v1/replication", nil, &r)
	return r, err
}

// Join asks the agent to admit a new member.
func (c *Client) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	var resp JoinResponse
	err := c.do(ctx, http.MethodPost, "/v1/join", req, &resp)
	return resp, err
}

// Allow adds an address to the allowed node host list.
func (c *Client) Allow(ctx context.Context, addr string) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/allow", AddressRequest{Address: addr}, &m)
	return m.Message, err
}

// Disallow removes a node from the cluster.
func (c *Client) Disallow(ctx context.Context, addr string) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/disallow", AddressRequest{Address: addr}, &m)
	return m.Message, err
}

// StopCluster stops every agent.
func (c *Client) StopCluster(ctx context.Context) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/stop-cluster", nil, &m)
	return m.Message, err
}

// Resume returns an idle agent to monitoring.
func (c *Client) Resume(ctx context.Context) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/resume", nil, &m)
	return m.Message, err
}

// Promote asks for a promote or a switchover and waits for its outcome.
func (c *Client) Promote(ctx context.Context, req PromoteRequest) (PromoteResult, error) {
	var res PromoteResult
	err := c.do(ctx, http.MethodPost, "/v1/promote", req, &res)
	return res, err
}

// SetPriority sets a node's failover priority.
func (c *Client) SetPriority(ctx context.Context, addr string, priority int) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/set-priority", PriorityRequest{Address: addr, Priority: priority}, &m)
	return m.Message, err
}

// SetMaintenance turns maintenance mode on or off.
func (c *Client) SetMaintenance(ctx context.Context, on bool) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/maintenance", MaintenanceRequest{On: on}, &m)
	return m.Message, err
}

// CreateStandby asks the agent to make its database a fresh standby.
func (c *Client) CreateStandby(ctx context.Context, req CreateStandbyRequest) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/create-standby", req, &m)
	return m.Message, err
}

// ResetMembers removes the members whose agents are down.
func (c *Client) ResetMembers(ctx context.Context) (string, error) {
	var m Message
	err := c.do(ctx, http.MethodPost, "/v1/reset-members", nil, &m)
	return m.Message, err
}

// URL is the base URL of an agent's API on host:port (IPv6 bracketed).
func URL(host string, port int) string {
	return "http://" + net.JoinHostPort(host, fmt.Sprint(port))
}
