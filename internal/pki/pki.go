// Package pki holds a cluster's credentials: the cluster key (a CA
// certificate and its private key, created once per cluster and copied
// to every node) and each node's certificate issued from it, or the
// user's own CA, certificate and key. Agents present these to each other
// for etcd peer traffic, joins and the admin API (docs/security.md): a
// peer without a certificate of this cluster gets nothing.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// Lifetimes: the CA outlives any cluster; a node certificate is issued
// again at every agent start, so a year is only a bound.
const (
	caLifetime   = 20 * 365 * 24 * time.Hour
	nodeLifetime = 365 * 24 * time.Hour
	clockSkew    = time.Hour
)

// ClusterKey is the cluster's CA: whoever holds it is a member. Trusted
// are further CA certificates accepted from peers while the cluster key
// is being replaced (Rotation).
type ClusterKey struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	Trusted []*x509.Certificate
}

// Pool is every CA certificate the key trusts.
func (k ClusterKey) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(k.Cert)
	for _, c := range k.Trusted {
		pool.AddCert(c)
	}
	return pool
}

// NewClusterKey makes a CA for cluster.
func NewClusterKey(cluster string) (ClusterKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return ClusterKey{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "pgfm cluster " + cluster + " CA", Organization: []string{"pgfm"}},
		NotBefore:    now.Add(-clockSkew), NotAfter: now.Add(caLifetime),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return ClusterKey{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ClusterKey{}, err
	}
	return ClusterKey{Cert: cert, Key: key}, nil
}

// PEM is the key file's content: the CA certificate, then its key.
func (k ClusterKey) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.Cert.Raw})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	for _, c := range k.Trusted {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out, nil
}

// Rotation is how a cluster moves from key old to key next without a
// moment when two running agents do not trust each other: every node
// gets each step's file in turn, and every agent restarts (one at a
// time) between steps.
//
//	1: old key, trusting next too (all still issue from old)
//	2: next key, trusting old too (all issue from next, old still works)
//	3: next key alone
func Rotation(old, next ClusterKey) [3]ClusterKey {
	return [3]ClusterKey{
		{Cert: old.Cert, Key: old.Key, Trusted: []*x509.Certificate{next.Cert}},
		{Cert: next.Cert, Key: next.Key, Trusted: []*x509.Certificate{old.Cert}},
		{Cert: next.Cert, Key: next.Key},
	}
}

// WriteClusterKey creates path with k, readable by its owner only. It
// never overwrites a file or follows a symbolic link: a cluster key, once
// there, is the cluster's identity.
func WriteClusterKey(path string, k ClusterKey) error {
	data, err := k.PEM()
	if err != nil {
		return err
	}
	return writeNew(path, data)
}

// ParseClusterKey reads a key file's content: CA certificates and one
// private key, which must belong to one of them.
func ParseClusterKey(data []byte) (ClusterKey, error) {
	var k ClusterKey
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return k, fmt.Errorf("a certificate: %w", err)
			}
			if !c.IsCA {
				return k, fmt.Errorf("certificate %q is not a CA certificate", c.Subject.CommonName)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "EC PRIVATE KEY":
			if k.Key != nil {
				return k, errors.New("it holds more than one private key")
			}
			key, err := parseKey(b)
			if err != nil {
				return k, err
			}
			k.Key = key
		}
	}
	if len(certs) == 0 || k.Key == nil {
		return k, errors.New("it does not hold a CA certificate and its private key (PEM)")
	}
	for _, c := range certs {
		if k.Cert == nil && publicKeysEqual(c.PublicKey, k.Key.Public()) {
			k.Cert = c
		} else {
			k.Trusted = append(k.Trusted, c)
		}
	}
	if k.Cert == nil {
		return k, errors.New("its private key belongs to none of its certificates")
	}
	return k, nil
}

// LoadClusterKey reads the cluster key file; the file must be readable
// by its owner alone.
func LoadClusterKey(path string) (ClusterKey, error) {
	data, err := readPrivate(path)
	if err != nil {
		return ClusterKey{}, err
	}
	k, err := ParseClusterKey(data)
	if err != nil {
		return k, fmt.Errorf("cluster key %s: %w; copy the file again from a running member", path, err)
	}
	return k, nil
}

// Issue makes a certificate for the node at ip, for server and client
// authentication, signed by k.
func (k ClusterKey) Issue(ip netip.Addr, cluster string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "pgfm " + cluster + " node " + ip.String(), Organization: []string{"pgfm"}},
		NotBefore:    now.Add(-clockSkew), NotAfter: now.Add(nodeLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IP(ip.AsSlice())},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.Cert, key.Public(), k.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Credentials are what this node presents and trusts.
type Credentials struct {
	CA   *x509.CertPool
	Cert tls.Certificate
	// Files of the same, for etcd (which reads its TLS from files) and
	// for the pgfm command on this host.
	CAFile, CertFile, KeyFile string
}

// ServerConfig is the TLS of a listener that asks for, and verifies, a
// certificate of this cluster; whether one is required is the handler's
// business (load balancers have none).
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Cert},
		ClientCAs:    c.CA,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
}

// ClientConfig is the TLS of a connection to another agent: it presents
// this node's certificate and trusts only the cluster's CA. The server's
// certificate must name the address dialled (Go checks IP SANs).
func (c *Credentials) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.Cert},
		RootCAs:      c.CA,
	}
}

// Holder hands the credentials to servers started before they are known
// (the agent serves health checks before it has joined).
type Holder struct{ p atomic.Pointer[Credentials] }

// Set makes c the credentials served from now on.
func (h *Holder) Set(c *Credentials) { h.p.Store(c) }

// Get is the current credentials, nil until Set.
func (h *Holder) Get() *Credentials { return h.p.Load() }

// Files in state.dir/tls.
const (
	caName   = "ca.pem"
	certName = "node.pem"
	keyName  = "node-key.pem"
)

// FilesIn are the credential files an agent writes to its state dir.
func FilesIn(stateDir string) (ca, cert, key string) {
	d := filepath.Join(stateDir, "tls")
	return filepath.Join(d, caName), filepath.Join(d, certName), filepath.Join(d, keyName)
}

// FromClusterKey issues this node's certificate from k and writes the
// credential files into stateDir/tls, replacing earlier ones.
func FromClusterKey(k ClusterKey, ip netip.Addr, cluster, stateDir string) (*Credentials, error) {
	cert, err := k.Issue(ip, cluster)
	if err != nil {
		return nil, fmt.Errorf("issue this node's certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	ca, certFile, keyFile := FilesIn(stateDir)
	if err := os.MkdirAll(filepath.Dir(ca), 0o700); err != nil {
		return nil, fmt.Errorf("state.dir: %w", err)
	}
	for _, f := range []struct {
		path string
		typ  string
		der  []byte
	}{{certFile, "CERTIFICATE", cert.Certificate[0]}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := replace(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	var bundle []byte
	for _, c := range append([]*x509.Certificate{k.Cert}, k.Trusted...) {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := replace(ca, bundle); err != nil {
		return nil, fmt.Errorf("write %s: %w", ca, err)
	}
	return &Credentials{CA: k.Pool(), Cert: cert, CAFile: ca, CertFile: certFile, KeyFile: keyFile}, nil
}

// LoadFiles reads credentials from PEM files: the user's own PKI
// (tls.ca.file, tls.cert.file, tls.key.file) or those FromClusterKey
// wrote. When ip is valid, the certificate must name it.
func LoadFiles(caFile, certFile, keyFile string, ip netip.Addr) (*Credentials, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	if _, err := readPrivate(keyFile); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%s is not a certificate of %s's CA for server and client authentication: %w", certFile, caFile, err)
	}
	if ip.IsValid() && leaf.VerifyHostname(ip.String()) != nil {
		return nil, fmt.Errorf("%s does not name this node's address %s (subject alternative name IP:%s needed)", certFile, ip, ip)
	}
	return &Credentials{CA: pool, Cert: cert, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}, nil
}

// PeerNames reports whether a verified peer certificate names ip: a node
// proves its address with its certificate, not only with its source.
func PeerNames(state *tls.ConnectionState, ip string) bool {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return false
	}
	return state.PeerCertificates[0].VerifyHostname(ip) == nil
}

// readPrivate reads a secret file that must not be a symbolic link and
// must be readable by its owner alone.
func readPrivate(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symbolic link; secrets are read only from regular files", path)
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s can be read by others (mode %04o); make it private: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return os.ReadFile(f.Name())
}

// writeNew creates path exclusively (never through a link) with mode 0600.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// replace writes path atomically through an exclusively created
// temporary file in the same directory.
func replace(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	if b.Type == "EC PRIVATE KEY" {
		key, err = x509.ParseECPrivateKey(b.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("its private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("its private key (%T) cannot sign", key)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}
