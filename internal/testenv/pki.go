package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pki is the files of a throwaway certificate authority: its certificate,
// a server certificate and a client certificate, each with its key.
type pki struct {
	CACert                string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// clientCN is the client certificate's common name. etcd with client
// certificate auth takes a certificate's CN as the user of a request that
// carries no token, so it names no etcd user: the certificate alone
// grants nothing once auth is on.
const clientCN = "pgfm-test-client"

// writePKI makes a CA and signs, with crypto/x509 alone, a server
// certificate valid for ips (also usable as a client certificate, as etcd
// peers present it to each other) and a client certificate; it writes
// them as PEM files into dir.
func writePKI(dir string, ips []string) (pki, error) {
	p := pki{
		CACert:     filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.crt"), ClientKey: filepath.Join(dir, "client.key"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgfm test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return p, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return p, err
	}
	if err := writePEM(p.CACert, "CERTIFICATE", caDER); err != nil {
		return p, err
	}
	server := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pgfm test etcd"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, ip := range ips {
		server.IPAddresses = append(server.IPAddresses, net.ParseIP(ip))
	}
	if err := signLeaf(server, ca, caKey, p.ServerCert, p.ServerKey); err != nil {
		return p, err
	}
	client := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: clientCN},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return p, signLeaf(client, ca, caKey, p.ClientCert, p.ClientKey)
}

// signLeaf gives tmpl a new key and a day's validity, signs it with the CA
// and writes certificate and key.
func signLeaf(tmpl, ca *x509.Certificate, caKey crypto.Signer, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("sign %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(keyFile, "PRIVATE KEY", keyDER)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// OwnPKI writes a CA and one certificate valid for every node's host (for
// server and client authentication) into dir, and returns the properties
// that make the agents use them instead of the cluster key.
func OwnPKI(t testing.TB, dir string, nodes ...*Node) map[string]string {
	t.Helper()
	var ips []string
	for _, n := range nodes {
		ips = append(ips, n.Host)
	}
	p, err := writePKI(dir, ips)
	if err != nil {
		t.Fatalf("testenv: pki: %v", err)
	}
	return map[string]string{"tls.ca.file": p.CACert, "tls.cert.file": p.ServerCert, "tls.key.file": p.ServerKey}
}
