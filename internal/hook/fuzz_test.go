package hook

import (
	"mime"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzArgv runs a script's command line through Split and placeholder
// expansion with values that come from etcd (node addresses in the
// primary record). Expansion never changes the number of arguments, only
// words with a % change, and a value is substituted as is: never split,
// never expanded again. The script's environment carries the values
// exactly, and is refused only for a NUL byte.
func FuzzArgv(f *testing.F) {
	f.Add(`/usr/local/bin/fence.sh %f %p`, "10.0.0.2", "10.0.0.1", "10.0.0.3")
	f.Add(`sudo -u %u /bin/sh -c 'echo "%p" > /tmp/x'`, "10.0.0.2", "", "")
	f.Add(`/f "%f" %h %%p %x %`, "a b 'c'", "%p", "%%")
	f.Add(`x "`, "", "", "")
	f.Add(`\`, "\x00", "\n", `"`)
	f.Fuzz(func(t *testing.T, cmdline, newPrimary, failed, node string) {
		vars := Placeholders{NewPrimary: newPrimary, FailedPrimary: failed, Node: node, Type: "p", Owner: "postgres"}
		words, serr := Split(cmdline)
		args, aerr := argv(cmdline, vars)
		if (serr == nil) != (aerr == nil) {
			t.Fatalf("argv(%q): %v, Split: %v", cmdline, aerr, serr)
		}
		if serr == nil {
			if len(args) != len(words) {
				t.Fatalf("argv(%q) = %q: %d arguments from %d words", cmdline, args, len(args), len(words))
			}
			for i, w := range words {
				if !strings.Contains(w, "%") && args[i] != w {
					t.Fatalf("argv(%q): word %q became %q", cmdline, w, args[i])
				}
			}
		}

		// Each value is one argument, exactly.
		got, err := argv(`/bin/fence %p %f '%h' "%p"`, vars)
		want := []string{"/bin/fence", newPrimary, failed, node, newPrimary}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("argv = %q, %v; want %q", got, err, want)
		}

		env := Env("main", "failover", vars)
		hasNUL := strings.Contains(newPrimary+failed+node, "\x00")
		if err := checkEnv(env); (err != nil) != hasNUL {
			t.Fatalf("checkEnv(%q) = %v", env, err)
		}
		for _, kv := range envList(env) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || env[k] != v || v == "" {
				t.Fatalf("environment entry %q does not carry %s=%q", kv, k, env[k])
			}
		}
	})
}

// FuzzMailMessage renders notification emails, whose subject and body
// carry addresses and messages from other agents. Whatever they hold, the
// header is exactly our seven fields, one line each, the subject decodes
// to what was given, and the body is the body.
func FuzzMailMessage(f *testing.F) {
	f.Add("pgfm@db1.example.com", "dba@example.com\x00ops@example.com",
		"[SEVERE] pgfm Failover has completed on cluster main", "pgfm node: 10.0.0.1\nCluster name: main\n\nDone.", int64(1767225600))
	f.Add("a@b", "c@d", "Übergang — ok", "line\r\nline\r\n", int64(0))
	f.Add("a@b\r\nBcc: evil@x", "c@d\nBcc: evil@y", "x\r\nBcc: evil@z", "\r\n.\r\nQUIT\r\n", int64(-62135596800))
	f.Add("", "", "", "", int64(253402300799))
	f.Add("a@b", "c@d", strings.Repeat("é", 200), ".", int64(1))
	f.Fuzz(func(t *testing.T, from, to, subject, body string, unix int64) {
		at := time.Unix(unix, 0).UTC()
		msg := string(mailMessage(from, strings.Split(to, "\x00"), subject, body, at))
		head, gotBody, ok := strings.Cut(msg, "\n\n")
		if !ok {
			t.Fatalf("no blank line ends the header:\n%s", msg)
		}
		lines := strings.Split(head, "\n")
		names := []string{"From", "To", "Subject", "Date", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}
		if len(lines) != len(names) {
			t.Fatalf("%d header lines, want %d:\n%s", len(lines), len(names), head)
		}
		for i, l := range lines {
			// A carriage return would end the line for some mail servers.
			if !strings.HasPrefix(l, names[i]+": ") || strings.ContainsRune(l, '\r') {
				t.Fatalf("header line %d is %q, want the %s field on one line", i, l, names[i])
			}
		}
		// An ASCII subject that already looks like an encoded word
		// ("=?utf-8?q?...?=") is sent as is, and mail readers decode it;
		// that is the mime package's rule, not ours.
		if !strings.Contains(subject, "=?") {
			var dec mime.WordDecoder
			got, err := dec.DecodeHeader(strings.TrimPrefix(lines[2], "Subject: "))
			if err != nil || got != subject {
				t.Fatalf("subject %q reads back as %q, %v", subject, got, err)
			}
		}
		want := strings.ReplaceAll(body, "\r\n", "\n")
		if !strings.HasSuffix(body, "\n") {
			want += "\n"
		}
		if gotBody != want {
			t.Fatalf("body %q delivered as %q", body, gotBody)
		}
	})
}
