package dcs

import (
	"crypto/tls"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Conn says how to reach etcd: the embedded member's socket, or an
// external cluster's endpoints with its TLS files and user.
type Conn struct {
	Endpoints      []string
	CACert, Cert   string // file paths; CACert alone verifies the server
	Key            string
	User, Password string
	DialTimeout    time.Duration // default 5 s
	RequestTimeout time.Duration // unused by etcd's client; kept by callers
}

// Open connects to etcd and returns the store of cluster name on it.
func Open(c Conn, name string) (*Store, error) {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		Username:    c.User,
		Password:    c.Password,
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if c.CACert != "" || c.Cert != "" {
		tc, err := tlsConfig(c)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("dcs: connect to etcd %v: %w", c.Endpoints, err)
	}
	return New(cli, name), nil
}

func tlsConfig(c Conn) (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CACert}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("dcs: etcd TLS files (dcs.cacert, dcs.cert, dcs.key): %w", err)
	}
	return tc, nil
}

// Close closes the connection to etcd.
func (s *Store) Close() error { return s.cli.Close() }
