package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfm/pgfm/internal/secret"
)

// fakeClock is the time the password's retry rule sees.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// writeScript writes an executable shell script that first counts its
// run in DIR/runs; it returns its path.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pw.sh")
	text := fmt.Sprintf("#!/bin/sh\necho run >> %s/runs\n%s\n", dir, body)
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func runs(t *testing.T, script string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(script), "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func scriptPassword(cmdline string, decrypt func(string) (string, error), timeout time.Duration) (*Password, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := NewPasswordScript(PasswordScript{Cluster: "main", Cmdline: cmdline, Retry: 10 * time.Second, Timeout: timeout, Decrypt: decrypt})
	p.now = clock.now
	return p, clock
}

// waitIdle waits for the run in flight, if any.
func waitIdle(p *Password) {
	p.mu.Lock()
	ch := p.running
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func authErr(code string) error {
	return fmt.Errorf("failed to connect: %w", &pgconn.PgError{Severity: "FATAL", Code: code, Message: "password authentication failed for user \"app\""})
}

func TestPasswordFixed(t *testing.T) {
	ctx := context.Background()
	if pw, err := NewPassword("main", "s3cret").Get(ctx); pw != "s3cret" || err != nil {
		t.Errorf("fixed: %q, %v", pw, err)
	}
	if pw, err := NewPassword("main", "").Get(ctx); pw != "" || err != nil {
		t.Errorf("none: %q, %v", pw, err)
	}
	var none *Password
	if pw, err := none.Get(ctx); pw != "" || err != nil {
		t.Errorf("nil: %q, %v", pw, err)
	}
	if !none.Failed(authErr("28P01")) || !none.Failed(authErr("28000")) || none.Failed(errors.New("connection refused")) ||
		none.Failed(&pgconn.PgError{Code: "57P03"}) || none.Failed(nil) {
		t.Error("Failed does not tell authentication failures (28P01, 28000) from others")
	}
	none.Close()
}

func TestPasswordScriptOutput(t *testing.T) {
	enc, err := secret.Encrypt("main", "from vault")
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func(v string) (string, error) { return secret.Decrypt("main", v) }
	for _, tc := range []struct {
		name, body string
		decrypt    bool
		timeout    time.Duration
		want       string
		wantErr    []string
	}{
		{name: "one line", body: `printf 's3cret\n'`, want: "s3cret"},
		{name: "no line end", body: `printf 's3cret'`, want: "s3cret"},
		{name: "CRLF", body: `printf 's3cret\r\n'`, want: "s3cret"},
		{name: "blanks are the password's", body: `printf ' pass word \n'`, want: " pass word "},
		{name: "encrypted", body: "echo '" + enc + "'", decrypt: true, want: "from vault"},
		{name: "non-zero exit", body: "echo 'vault is sealed' >&2; exit 3", wantErr: []string{"exit status 3", "vault is sealed"}},
		{name: "nothing printed", body: "true", wantErr: []string{"exited 0 but printed nothing"}},
		{name: "several lines", body: `printf 'Password:\ns3cret\n'`, wantErr: []string{"printed several lines; it must print only the password"}},
		{name: "too much", body: "head -c 5000 /dev/zero | tr '\\0' a", wantErr: []string{"printed more than 4096 bytes"}},
		{name: "hangs", body: "sleep 30", timeout: 300 * time.Millisecond, wantErr: []string{"did not finish within 300ms (script.timeout): killed"}},
		{name: "encrypted expected, clear printed", body: "echo s3cret", decrypt: true, wantErr: []string{
			"printed no value of `pgfm encrypt main` (script.db.password.encrypted=true)", "run `pgfm encrypt main` again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := writeScript(t, tc.body)
			var d func(string) (string, error)
			if tc.decrypt {
				d = decrypt
			}
			p, _ := scriptPassword(script, d, tc.timeout)
			defer p.Close()
			start := time.Now()
			pw, err := p.Get(context.Background())
			if time.Since(start) > 10*time.Second {
				t.Errorf("Get took %v", time.Since(start))
			}
			if len(tc.wantErr) == 0 {
				if err != nil || pw != tc.want {
					t.Fatalf("Get = %q, %v; want %q", pw, err, tc.want)
				}
				return
			}
			if err == nil || pw != "" {
				t.Fatalf("Get = %q, %v; want an error", pw, err)
			}
			for _, w := range append(tc.wantErr, "script.db.password gave no password", "tried again every script.db.password.retry") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the script's output", err)
			}
		})
	}
}

func TestPasswordScriptBadCommandLine(t *testing.T) {
	for _, cmdline := range []string{"/nonexistent/pw.sh", "/bin/pw 'unclosed"} {
		p, _ := scriptPassword(cmdline, nil, time.Second)
		if pw, err := p.Get(context.Background()); err == nil || pw != "" {
			t.Errorf("%s: Get = %q, %v; want an error", cmdline, pw, err)
		}
	}
}

// The script runs at the first Get, again after a failed run or an
// authentication failure, and never before script.db.password.retry has
// passed since its last run.
func TestPasswordScriptRetry(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "current")
	script := writeScript(t, fmt.Sprintf("[ -f %s ] || { echo 'not yet' >&2; exit 1; }\ncat %s", pwFile, pwFile))
	p, clock := scriptPassword(script, nil, 5*time.Second)
	defer p.Close()
	ctx := context.Background()
	get := func(want string, wantRuns int) {
		t.Helper()
		pw, err := p.Get(ctx)
		waitIdle(p)
		if pw != want || (want == "") != (err != nil) || runs(t, script) != wantRuns {
			t.Fatalf("Get = %q, %v after %d runs; want %q after %d", pw, err, runs(t, script), want, wantRuns)
		}
	}
	get("", 1) // fails: no password yet
	if err := os.WriteFile(pwFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	get("", 1) // too soon to run again
	clock.advance(9 * time.Second)
	get("", 1)
	clock.advance(time.Second)
	get("first", 2)
	clock.advance(time.Minute)
	get("first", 2) // a password that works is kept

	if err := os.WriteFile(pwFile, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Failed(errors.New("connection refused")) // not about the password
	get("first", 2)
	p.Failed(authErr("28P01"))
	// A minute passed since the last run: the run starts at once, and
	// the old password is returned meanwhile; the next Get has the new one.
	pw, err := p.Get(ctx)
	if pw != "first" || err != nil {
		t.Fatalf("Get during the refresh = %q, %v; want the old password", pw, err)
	}
	waitIdle(p)
	get("second", 3)

	p.Failed(authErr("28000"))
	get("second", 3) // refused again at once: not twice within the retry
	clock.advance(10 * time.Second)
	get("second", 4)
	get("second", 4) // that run cleared the failure
}

func TestPasswordScriptOneRunAtATime(t *testing.T) {
	script := writeScript(t, "sleep 0.3; echo s3cret")
	p, _ := scriptPassword(script, nil, 5*time.Second)
	defer p.Close()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if pw, err := p.Get(context.Background()); pw != "s3cret" || err != nil {
				t.Errorf("Get = %q, %v", pw, err)
			}
		})
	}
	wg.Wait()
	if n := runs(t, script); n != 1 {
		t.Errorf("%d runs for 20 concurrent first Gets, want 1", n)
	}
}

// A caller's context bounds its wait for the first run, not the run.
func TestPasswordScriptGetHonoursContext(t *testing.T) {
	script := writeScript(t, "sleep 0.5; echo s3cret")
	p, _ := scriptPassword(script, nil, 5*time.Second)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	pw, err := p.Get(ctx)
	if pw != "" || err == nil || !strings.Contains(err.Error(), "script.db.password has not printed the password yet") {
		t.Fatalf("Get = %q, %v; want no password yet", pw, err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("Get waited %v past its context", d)
	}
	waitIdle(p)
	if pw, err := p.Get(context.Background()); pw != "s3cret" || err != nil || runs(t, script) != 1 {
		t.Errorf("after the run: %q, %v, %d runs", pw, err, runs(t, script))
	}
}

func TestPasswordExplain(t *testing.T) {
	failing := writeScript(t, "echo 'vault is sealed' >&2; exit 1")
	ranAndFailed, _ := scriptPassword(failing, nil, time.Second)
	_, _ = ranAndFailed.Get(context.Background())
	encrypted, _ := scriptPassword("/bin/pw", func(string) (string, error) { return "", nil }, time.Second)
	plain, _ := scriptPassword("/bin/pw", nil, time.Second)
	for _, tc := range []struct {
		name string
		p    *Password
		code string
		want []string
	}{
		{"nil", nil, "28P01", []string{"no password is configured: set db.password.encrypted (run `pgfm encrypt CLUSTER`) or script.db.password"}},
		{"none", NewPassword("main", ""), "28P01", []string{"run `pgfm encrypt main`", "~/.pgpass"}},
		{"fixed", NewPassword("main", "s3cret"), "28P01", []string{
			"password authentication failed", "the password comes from db.password.encrypted: run `pgfm encrypt main` with db.user's password and replace its value"}},
		{"fixed, no hba line", NewPassword("main", "s3cret"), "28000", []string{"db.password.encrypted", "pg_hba.conf has no line"}},
		{"script", plain, "28P01", []string{"the password comes from script.db.password: check what it prints (only the password)"}},
		{"encrypted script", encrypted, "28P01", []string{"as a value of `pgfm encrypt main`, since script.db.password.encrypted=true"}},
		{"script that failed", ranAndFailed, "28P01", []string{"its last run failed", "vault is sealed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Explain(authErr(tc.code))
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tc.code {
				t.Errorf("Explain lost the server's error: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%q shows the password", err)
			}
		})
	}
	other := errors.New("connection refused")
	if NewPassword("main", "x").Explain(other) != other {
		t.Error("Explain changed an error that is not an authentication failure")
	}
}
