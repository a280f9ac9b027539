package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var nodeIP = netip.MustParseAddr("198.18.0.10")

func newKey(t *testing.T) ClusterKey {
	t.Helper()
	k, err := NewClusterKey("main")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(t *testing.T, k ClusterKey) []byte {
	t.Helper()
	b, err := k.PEM()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestClusterKeyRoundTrip(t *testing.T) {
	k := newKey(t)
	got, err := ParseClusterKey(pemOf(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(k.Cert) || !publicKeysEqual(got.Key.Public(), k.Key.Public()) || len(got.Trusted) != 0 {
		t.Errorf("round trip changed the key: %+v", got)
	}
}

func TestParseClusterKeyRefuses(t *testing.T) {
	a, b := newKey(t), newKey(t)
	leaf, err := a.Issue(nodeIP, "main")
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := string(pemOf(t, a)), string(pemOf(t, b))
	certA, keyA := pa[:strings.Index(pa, "-----BEGIN PRIVATE KEY")], pa[strings.Index(pa, "-----BEGIN PRIVATE KEY"):]
	certB := pb[:strings.Index(pb, "-----BEGIN PRIVATE KEY")]
	keyB := pb[strings.Index(pb, "-----BEGIN PRIVATE KEY"):]
	leafPEM := string(pemBlock("CERTIFICATE", leaf.Certificate[0]))
	for name, tc := range map[string]struct{ in, want string }{
		"empty":             {"", "does not hold"},
		"certificate alone": {certA, "does not hold"},
		"key alone":         {keyA, "does not hold"},
		"key of another CA": {certA + keyB, "belongs to none"},
		"a node cert":       {leafPEM + keyA, "not a CA certificate"},
		"two keys":          {certA + keyA + keyB, "more than one private key"},
		"garbage":           {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "a certificate"},
	} {
		if _, err := ParseClusterKey([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
		}
	}
	// Another CA's certificate next to the pair is trusted, not used.
	k, err := ParseClusterKey([]byte(certB + certA + keyA))
	if err != nil || !k.Cert.Equal(a.Cert) || len(k.Trusted) != 1 || !k.Trusted[0].Equal(b.Cert) {
		t.Errorf("key with an extra CA: %v, %+v", err, k)
	}
}

func TestClusterKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "main.key")
	k := newKey(t)
	if err := WriteClusterKey(path, k); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if got, err := LoadClusterKey(path); err != nil || !got.Cert.Equal(k.Cert) {
		t.Fatalf("load: %v", err)
	}
	if err := WriteClusterKey(path, newKey(t)); err == nil {
		t.Error("an existing cluster key was overwritten")
	}
	// A link planted at the path is neither followed to write nor read.
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteClusterKey(link, k); err == nil {
		t.Error("wrote through a symbolic link")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link's target was changed: %q", b)
	}
	if _, err := LoadClusterKey(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("load through a link: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadClusterKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others was loaded: %v", err)
	}
	if _, err := LoadClusterKey(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Errorf("missing key: %v, want not-exist", err)
	}
}

func TestNodeCredentials(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	c, err := FromClusterKey(k, nodeIP, "main", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Cert.Leaf.Verify(x509.VerifyOptions{Roots: c.CA, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	if c.Cert.Leaf.VerifyHostname(nodeIP.String()) != nil || c.Cert.Leaf.VerifyHostname("198.18.0.11") == nil {
		t.Error("the node certificate must name its address and no other")
	}
	// The files written are what the pgfm command and etcd read.
	ca, cert, key := FilesIn(dir)
	if _, err := LoadFiles(ca, cert, key, nodeIP); err != nil {
		t.Errorf("load written files: %v", err)
	}
	if _, err := LoadFiles(ca, cert, key, netip.MustParseAddr("198.18.0.11")); err == nil || !strings.Contains(err.Error(), "does not name") {
		t.Errorf("a certificate for another address was accepted: %v", err)
	}
	other, err := FromClusterKey(newKey(t), nodeIP, "main", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFiles(ca, other.CertFile, other.KeyFile, nodeIP); err == nil {
		t.Error("a certificate of another cluster key was accepted")
	}
	if st, _ := os.Stat(key); st.Mode().Perm()&0o077 != 0 {
		t.Errorf("node key mode %v", st.Mode().Perm())
	}
}

func TestPeerNames(t *testing.T) {
	k := newKey(t)
	c, err := k.Issue(nodeIP, "main")
	if err != nil {
		t.Fatal(err)
	}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}, VerifiedChains: [][]*x509.Certificate{{c.Leaf, k.Cert}}}
	unverified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	for _, tc := range []struct {
		st   *tls.ConnectionState
		ip   string
		want bool
	}{
		{verified, "198.18.0.10", true},
		{verified, "198.18.0.11", false},
		{unverified, "198.18.0.10", false},
		{nil, "198.18.0.10", false},
		{verified, "", false},
	} {
		if got := PeerNames(tc.st, tc.ip); got != tc.want {
			t.Errorf("PeerNames(verified=%v, %q) = %v", tc.st != nil && len(tc.st.VerifiedChains) > 0, tc.ip, got)
		}
	}
}

// Between two consecutive steps of a rotation, agents on either step
// trust each other; after the last, the old key is not trusted.
func TestRotationKeepsNeighboursTrusting(t *testing.T) {
	old, next := newKey(t), newKey(t)
	rot := Rotation(old, next)
	steps := append([]ClusterKey{old}, rot[:]...)
	creds := make([]*Credentials, len(steps))
	for i, k := range steps {
		// Each step goes through its file, as an operator copies it.
		k, err := ParseClusterKey(pemOf(t, k))
		if err != nil {
			t.Fatal(err)
		}
		if creds[i], err = FromClusterKey(k, nodeIP, "main", t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	trusts := func(a, b *Credentials) bool {
		_, err := b.Cert.Leaf.Verify(x509.VerifyOptions{Roots: a.CA, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	for i := 0; i+1 < len(creds); i++ {
		if !trusts(creds[i], creds[i+1]) || !trusts(creds[i+1], creds[i]) {
			t.Errorf("steps %d and %d do not trust each other", i, i+1)
		}
	}
	if trusts(creds[3], creds[0]) {
		t.Error("after the rotation the old key is still trusted")
	}
}
