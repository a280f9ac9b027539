package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfm/pgfm/internal/config"
	"github.com/pgfm/pgfm/internal/secret"
)

// runIn is run with stdin.
func runIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb}
	root := newRoot(e)
	root.SetArgs(doubleDash(args))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(context.Background())
	var ee *ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.Code
		errb.WriteString(ee.Error())
	default:
		code = 1
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

// valueLine is the db.password.encrypted=... line of encrypt's output.
func valueLine(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "db.password.encrypted="); ok {
			return v
		}
	}
	t.Fatalf("no db.password.encrypted= line in:\n%s", out)
	return ""
}

func TestEncryptPrompt(t *testing.T) {
	dir, _ := writeConfig(t, "main")
	code, out, errOut := runIn(t, "s3cret pw\ns3cret pw\n", "--config-dir", dir, "encrypt", "main")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"This utility will generate an encrypted password for you to place in your\npgfm cluster property file: " + filepath.Join(dir, "main.properties") + "\n",
		"Please enter the password and hit enter: ",
		"Please enter the password again to confirm: ",
		"The encrypted password is: pgfm1:",
		"Please paste this into your main.properties file\ndb.password.encrypted=pgfm1:",
		"Anyone who can read the file and knows the cluster name can decrypt it",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("the password is printed:\n%s", out)
	}
	v := valueLine(t, out)
	if pw, err := secret.Decrypt("main", v); pw != "s3cret pw" || err != nil {
		t.Errorf("the value decrypts to %q, %v", pw, err)
	}

	// Pasted into the file, the agent's configuration has the password.
	f, err := os.OpenFile(filepath.Join(dir, "main.properties"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("db.password.encrypted=" + v + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg, _, err := config.Load(dir, "main")
	if err != nil || cfg.DB.Password != "s3cret pw" {
		t.Fatalf("loaded password %q, %v", cfg.DB.Password, err)
	}
	// ...and not in another cluster's.
	other, _ := writeConfig(t, "other")
	if err := os.WriteFile(filepath.Join(other, "other.properties"), append(mustRead(t, filepath.Join(dir, "main.properties")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := config.Load(other, "other"); err == nil || !strings.Contains(err.Error(), "encrypted for another cluster") ||
		!strings.Contains(err.Error(), "run `pgfm encrypt other` again") {
		t.Errorf("another cluster loaded the value: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncryptFromEnv(t *testing.T) {
	dir, _ := writeConfig(t, "main")
	for _, tc := range []struct {
		name     string
		pgfmpass *string
		efmpass  *string
		want     string
		code     int
		wantErr  string
	}{
		{name: "PGFMPASS", pgfmpass: ptr("from pgfm"), want: "from pgfm"},
		{name: "EFM's EFMPASS", efmpass: ptr("from efm"), want: "from efm"},
		{name: "PGFMPASS first", pgfmpass: ptr("from pgfm"), efmpass: ptr("from efm"), want: "from pgfm"},
		{name: "neither", code: 1, wantErr: "--from-env: $PGFMPASS (or $EFMPASS) is not set or empty"},
		{name: "empty", pgfmpass: ptr(""), efmpass: ptr("ignored"), code: 1, wantErr: "is not set or empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, v := range map[string]*string{passEnv: tc.pgfmpass, efmPassEnv: tc.efmpass} {
				t.Setenv(name, "")
				if v == nil {
					os.Unsetenv(name)
				} else {
					os.Setenv(name, *v)
				}
			}
			code, out, errOut := runIn(t, "", "--config-dir", dir, "encrypt", "main", "--from-env")
			if code != tc.code || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, errOut, tc.code, tc.wantErr)
			}
			if tc.code != 0 {
				return
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], secret.Prefix) {
				t.Fatalf("--from-env printed %q; want the value alone", out)
			}
			if pw, err := secret.Decrypt("main", lines[0]); pw != tc.want || err != nil {
				t.Errorf("decrypts to %q, %v; want %q", pw, err, tc.want)
			}
		})
	}
}

func TestEncryptRefuses(t *testing.T) {
	dir, _ := writeConfig(t, "main")
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"passwords differ", "one\ntwo\n", []string{"encrypt", "main"}, 1, "the passwords do not match; run `pgfm encrypt main` again"},
		{"empty password", "\n\n", []string{"encrypt", "main"}, 1, "the password is empty"},
		{"no input", "", []string{"encrypt", "main"}, 1, "no password given (end of input)"},
		{"one line only", "pw\n", []string{"encrypt", "main"}, 1, "no password given"},
		{"bad cluster name", "pw\npw\n", []string{"encrypt", "../x"}, 2, "starts with '.'"},
		{"no cluster", "", []string{"encrypt"}, 2, "encrypt takes CLUSTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runIn(t, tc.stdin, append([]string{"--config-dir", dir}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, errOut, tc.code, tc.want)
			}
			if strings.Contains(out, "pgfm1:") {
				t.Errorf("a value was printed: %s", out)
			}
		})
	}
}

// A missing properties file is a warning, as in EFM; the value is printed.
func TestEncryptMissingFile(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runIn(t, "pw\npw\n", "--config-dir", dir, "encrypt", "newcluster")
	if code != 0 || !strings.Contains(errOut, "warning: "+filepath.Join(dir, "newcluster.properties")+" does not exist") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if pw, err := secret.Decrypt("newcluster", valueLine(t, out)); pw != "pw" || err != nil {
		t.Errorf("%q, %v", pw, err)
	}
}
