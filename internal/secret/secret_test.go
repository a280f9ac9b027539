package secret

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, pw := range []string{"x", "s3cret!", "with ' quote \\ and space", "pässwörd", strings.Repeat("long", 100)} {
		v, err := Encrypt("main", pw)
		if err != nil {
			t.Fatalf("Encrypt(%q): %v", pw, err)
		}
		if !strings.HasPrefix(v, Prefix) || (len(pw) > 3 && strings.Contains(v, pw)) {
			t.Errorf("Encrypt(%q) = %q: want the %s prefix and no password in it", pw, v, Prefix)
		}
		got, err := Decrypt("main", "  "+v+" ")
		if err != nil || got != pw {
			t.Errorf("Decrypt(Encrypt(%q)) = %q, %v", pw, got, err)
		}
		again, _ := Encrypt("main", pw)
		if again == v {
			t.Errorf("two encryptions of %q are equal: the nonce is not random", pw)
		}
	}
}

func TestEncryptRefuses(t *testing.T) {
	for _, tc := range []struct{ cluster, pw, want string }{
		{"main", "", "password is empty"},
		{"main", "a\x00b", "NUL"},
		{"", "pw", "no cluster name"},
	} {
		if _, err := Encrypt(tc.cluster, tc.pw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Encrypt(%q, %q) = %v, want an error with %q", tc.cluster, tc.pw, err, tc.want)
		}
	}
}

func TestDecryptFails(t *testing.T) {
	good, err := Encrypt("main", "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good, Prefix))
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return Prefix + base64.RawURLEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		name, cluster, value string
		is                   error
		want                 []string
	}{
		{"other cluster", "prod", good, ErrOtherCluster, []string{`not "prod"`, "run `pgfm encrypt prod` again"}},
		{"cluster name case matters", "Main", good, ErrOtherCluster, nil},
		{"tampered ciphertext", "main", flip(len(raw) - 20), ErrDamaged, []string{"damaged or was altered", "run `pgfm encrypt main` again"}},
		{"tampered tag", "main", flip(len(raw) - 1), ErrDamaged, nil},
		{"tampered nonce", "main", flip(checkLen), ErrDamaged, nil},
		{"cut short", "main", good[:len(good)-30], ErrDamaged, nil},
		{"not base64", "main", Prefix + "%%%", ErrDamaged, []string{"cut or edited"}},
		{"empty body", "main", Prefix, ErrDamaged, nil},
		{"other version", "main", "pgfm2:" + strings.TrimPrefix(good, Prefix), ErrFormat, []string{`format "pgfm2" is not "pgfm1"`, "run `pgfm encrypt main` again"}},
		{"relabelled version", "main", "pgfm0:" + strings.TrimPrefix(good, Prefix), ErrFormat, nil},
		{"EFM's form", "main", "516b36fb8031da17cfbc010f7d09359c", ErrFormat, []string{"EFM's encrypted form", "run `pgfm encrypt main` again"}},
		{"clear password", "main", "hunter2", ErrFormat, []string{`does not start with "pgfm1:"`, "run `pgfm encrypt main` again"}},
		{"empty", "main", "", ErrFormat, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pw, err := Decrypt(tc.cluster, tc.value)
			if !errors.Is(err, tc.is) || pw != "" {
				t.Fatalf("Decrypt = %q, %v; want %v", pw, err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") || (len(tc.value) > 10 && strings.Contains(err.Error(), tc.value)) {
				t.Errorf("error %q shows the password or the value", err)
			}
		})
	}
}

func TestIsEFM(t *testing.T) {
	for v, want := range map[string]bool{
		"516b36fb8031da17cfbc010f7d09359c":   true,
		" 516B36FB8031DA17CFBC010F7D09359C ": true,
		"516b36fb8031da17cfbc010f7d09359":    false,
		"516b36fb8031da17cfbc010f7d09359g":   false,
		"pgfm1:abc":                          false,
	} {
		if IsEFM(v) != want {
			t.Errorf("IsEFM(%q) = %v", v, !want)
		}
	}
}
