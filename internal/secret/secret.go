package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// What this protects, honestly: the key is derived from the cluster name
// and constants in this file, both public. Anyone who can read the
// properties file and knows the cluster name (it is the file's name) can
// decrypt the password. The format keeps the password out of sight when a
// properties file is pasted into a ticket, lands in a backup or on a
// screenshot, and stops a string from working in another cluster; it does
// not protect against someone who can read the file on the host. For that,
// the file's permissions, or script.db.password and a password manager.
//
// Format (version 1):
//
//	pgfm1:BASE64URL(check[4] || nonce[12] || AES-256-GCM(password))
//
// key   = HKDF-SHA256(secret = cluster name, salt = keySalt, info = keyInfo), 32 bytes
// check = HKDF-SHA256(same secret and salt, info = checkInfo), 4 bytes: says
// "another cluster" apart from "damaged", and reveals nothing the cluster
// name does not. The GCM additional data is the prefix, so a value cannot
// be relabelled as another version. The nonce is random for every value.

// Prefix starts every value Encrypt makes; a new format gets a new prefix.
const Prefix = "pgfm1:"

const (
	keySalt   = "pgfm: db.password.encrypted, format 1"
	keyInfo   = "pgfm1 password key"
	checkInfo = "pgfm1 cluster check"
	checkLen  = 4
	nonceLen  = 12
	tagLen    = 16
)

// Errors Decrypt wraps; their messages end with what to do.
var (
	// ErrFormat: not a value of this pgfm's `pgfm encrypt` (another
	// version, plain text, or EFM's form).
	ErrFormat = errors.New("not a value of this pgfm's encrypt command")
	// ErrOtherCluster: made by `pgfm encrypt` for another cluster name.
	ErrOtherCluster = errors.New("encrypted for another cluster")
	// ErrDamaged: the value was cut, edited or corrupted.
	ErrDamaged = errors.New("the value is damaged or was altered")
)

// Encrypt seals password for cluster. Every call gives a different value
// (random nonce); each decrypts to the same password.
func Encrypt(cluster, password string) (string, error) {
	if password == "" {
		return "", errors.New("secret: the password is empty")
	}
	if strings.ContainsRune(password, 0) {
		return "", errors.New("secret: the password contains a NUL byte, which PostgreSQL cannot take")
	}
	aead, check, err := keys(cluster)
	if err != nil {
		return "", err
	}
	buf := make([]byte, checkLen+nonceLen, checkLen+nonceLen+len(password)+tagLen)
	copy(buf, check)
	if _, err := rand.Read(buf[checkLen:]); err != nil {
		return "", fmt.Errorf("secret: nonce: %w", err)
	}
	buf = aead.Seal(buf, buf[checkLen:], []byte(password), []byte(Prefix))
	return Prefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Decrypt opens a value of Encrypt made for cluster. Its errors wrap
// ErrFormat, ErrOtherCluster or ErrDamaged and say to run `pgfm encrypt
// CLUSTER` again; they never contain the value or the password.
func Decrypt(cluster, value string) (string, error) {
	again := fmt.Sprintf("run `pgfm encrypt %s` again and use the value it prints", cluster)
	value = strings.TrimSpace(value)
	body, ok := strings.CutPrefix(value, Prefix)
	if !ok {
		switch {
		case IsEFM(value):
			return "", fmt.Errorf("%w: this is EFM's encrypted form (`efm encrypt`), which pgfm cannot read; %s", ErrFormat, again)
		case otherVersion.MatchString(value):
			v, _, _ := strings.Cut(value, ":")
			return "", fmt.Errorf("%w: format %q is not %q, the one this pgfm reads; %s", ErrFormat, v, strings.TrimSuffix(Prefix, ":"), again)
		}
		return "", fmt.Errorf("%w: it does not start with %q (a password in clear is not accepted); %s", ErrFormat, Prefix, again)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < checkLen+nonceLen+tagLen+1 {
		return "", fmt.Errorf("%w (cut or edited?); copy the whole value again, or %s", ErrDamaged, again)
	}
	aead, check, err := keys(cluster)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare(raw[:checkLen], check) != 1 {
		return "", fmt.Errorf("%w, not %q: a value only works in the cluster it was made for; %s", ErrOtherCluster, cluster, again)
	}
	nonce, sealed := raw[checkLen:checkLen+nonceLen], raw[checkLen+nonceLen:]
	plain, err := aead.Open(nil, nonce, sealed, []byte(Prefix))
	if err != nil {
		return "", fmt.Errorf("%w; copy the whole value again, or %s", ErrDamaged, again)
	}
	return string(plain), nil
}

// otherVersion is a prefix of a format this pgfm does not know.
var otherVersion = regexp.MustCompile(`^pgfm[0-9]{1,4}:`)

// IsEFM reports whether value looks like EFM's `efm encrypt` output: 32
// hexadecimal digits (16 bytes), whose algorithm is not public.
func IsEFM(value string) bool {
	value = strings.TrimSpace(value)
	if len(value) != 32 {
		return false
	}
	for _, c := range value {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// keys derives cluster's cipher and check value.
func keys(cluster string) (cipher.AEAD, []byte, error) {
	if cluster == "" {
		return nil, nil, errors.New("secret: no cluster name")
	}
	key, err := hkdf.Key(sha256.New, []byte(cluster), []byte(keySalt), keyInfo, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("secret: key: %w", err)
	}
	check, err := hkdf.Key(sha256.New, []byte(cluster), []byte(keySalt), checkInfo, checkLen)
	if err != nil {
		return nil, nil, fmt.Errorf("secret: key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("secret: %w", err)
	}
	return aead, check, nil
}
