package hook

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSeverity(t *testing.T) {
	for in, want := range map[string]Severity{"INFO": Info, "warning": Warning, " Severe ": Severe} {
		if got, err := ParseSeverity(in); err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSeverity("DEBUG"); err == nil || !strings.Contains(err.Error(), "use INFO, WARNING or SEVERE") {
		t.Errorf("ParseSeverity(DEBUG): %v", err)
	}
	if Info.String() != "INFO" || Warning.String() != "WARNING" || Severe.String() != "SEVERE" || !(Info < Warning && Warning < Severe) {
		t.Error("severity names or order")
	}
}

var failover = Notification{Severity: Warning, Subject: "Failover has completed on cluster main",
	Body: "Promoted 192.0.2.11.", Cluster: "main", Node: "192.0.2.11"}

func TestNotifyFormat(t *testing.T) {
	n := NewNotifier(NotifyConfig{}, nil, nil)
	if got := n.Subject(failover); got != "[WARNING] pgfm Failover has completed on cluster main" {
		t.Errorf("subject %q", got)
	}
	if got, want := n.Body(failover), "pgfm node: 192.0.2.11\nCluster name: main\n\nPromoted 192.0.2.11."; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	n = NewNotifier(NotifyConfig{TextPrefix: "[prod] Production"}, nil, nil)
	if got := n.Body(failover); !strings.HasPrefix(got, "[prod] Production\npgfm node: 192.0.2.11\n") {
		t.Errorf("body with prefix %q", got)
	}
	if got := n.Subject(Notification{Severity: Severe, Subject: "a\r\nBcc: x"}); got != "[SEVERE] pgfm a Bcc: x" {
		t.Errorf("subject kept on one line: %q", got)
	}
}

// notifyScript returns a notification script that appends "$1|$2" and a
// separator to a file, and that file.
func notifyScript(t *testing.T) (cmd, out string) {
	out = filepath.Join(t.TempDir(), "notes")
	return script(t, `printf '%s|%s|%s|%s\n--\n' "$1" "$2" "$PGFM_SEVERITY" "$#" >> `+shellQuote(out)), out
}

func TestNotifyScript(t *testing.T) {
	cmd, out := notifyScript(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := NewNotifier(NotifyConfig{Script: cmd, Level: Warning, Timeout: 5 * time.Second}, NewRunner(log), log)
	n.Notify(context.Background(), Notification{Severity: Info, Subject: "Standby agent running", Cluster: "main", Node: "192.0.2.12"})
	n.Notify(context.Background(), failover)
	n.Notify(context.Background(), Notification{Severity: Severe, Subject: "Fencing script error", Body: "exit status 3", Cluster: "main", Node: "192.0.2.11"})

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Called as SCRIPT "<subject>" "<body>": two arguments.
	want := "[WARNING] pgfm Failover has completed on cluster main|pgfm node: 192.0.2.11\nCluster name: main\n\nPromoted 192.0.2.11.|WARNING|2\n--\n" +
		"[SEVERE] pgfm Fencing script error|pgfm node: 192.0.2.11\nCluster name: main\n\nexit status 3|SEVERE|2\n--\n"
	if string(data) != want {
		t.Errorf("script got:\n%s\nwant:\n%s", data, want)
	}
	// Every notification is logged, INFO too.
	for _, s := range []string{"level=INFO msg=notification severity=INFO", "level=WARN msg=notification severity=WARNING",
		"level=ERROR msg=notification severity=SEVERE", `subject="Standby agent running"`} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
}

func TestNotifyBounded(t *testing.T) {
	hang := script(t, "sleep 60")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n := NewNotifier(NotifyConfig{Script: hang, Timeout: 300 * time.Millisecond, SMTPAddr: "127.0.0.1:1",
		UserEmail: []string{"dba@example.com"}}, NewRunner(log), log)
	start := time.Now()
	n.Notify(context.Background(), failover)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Notify took %v", elapsed)
	}
	for _, s := range []string{"script did not succeed", "outcome=\"timed out\"", "notification email not sent"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
}

// smtpServer is a minimal SMTP server for one test: it accepts connections
// on 127.0.0.1 and records each message's envelope and data.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []mail
	wg   sync.WaitGroup
}

type mail struct {
	from string
	to   []string
	data string
	helo string
}

func newSMTPServer(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = c.Write([]byte(line + "\r\n")) }
	var m mail
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			m.helo = strings.TrimSpace(line[4:])
			say("250 test")
		case "MAIL":
			m.from = line[len("MAIL FROM:"):]
			say("250 ok")
		case "RCPT":
			m.to = append(m.to, line[len("RCPT TO:"):])
			say("250 ok")
		case "DATA":
			say("354 go ahead")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			m.data = data.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			m = mail{helo: m.helo}
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

func (s *smtpServer) messages() []mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail(nil), s.msgs...)
}

func TestNotifyEmail(t *testing.T) {
	srv := newSMTPServer(t)
	n := NewNotifier(NotifyConfig{
		UserEmail: []string{"dba@example.com", "ops@example.com"},
		FromEmail: "pgfm@%h", Hostname: "db1.example.com", Level: Warning,
		TextPrefix: "[prod]", SMTPAddr: srv.ln.Addr().String(), Timeout: 5 * time.Second,
	}, nil, nil)
	n.Notify(context.Background(), Notification{Severity: Info, Subject: "dropped by the level", Cluster: "main"})
	note := failover
	note.Body = "line one\n.line starting with a dot"
	note.At = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	n.Notify(context.Background(), note)

	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1 (INFO filtered out)", len(msgs))
	}
	m := msgs[0]
	if m.from != "<pgfm@db1.example.com>" || strings.Join(m.to, " ") != "<dba@example.com> <ops@example.com>" || m.helo != "db1.example.com" {
		t.Errorf("envelope %+v", m)
	}
	for _, want := range []string{
		"From: pgfm@db1.example.com\r\n", "To: dba@example.com, ops@example.com\r\n",
		"Subject: [WARNING] pgfm Failover has completed on cluster main\r\n",
		"Date: Wed, 01 May 2024 12:00:00 +0000\r\n", "Content-Type: text/plain; charset=utf-8\r\n",
		"\r\n\r\n[prod]\r\npgfm node: 192.0.2.11\r\nCluster name: main\r\n\r\nline one\r\n..line starting with a dot\r\n",
	} {
		if !strings.Contains(m.data, want) {
			t.Errorf("message lacks %q:\n%s", want, m.data)
		}
	}
}

func TestNotifyEmailFailureLogged(t *testing.T) {
	// A listener that is closed at once: nothing answers there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	n := NewNotifier(NotifyConfig{UserEmail: []string{"dba@example.com"}, SMTPAddr: addr, Timeout: 2 * time.Second},
		nil, slog.New(slog.NewTextHandler(&logs, nil)))
	n.Notify(context.Background(), failover)
	if !strings.Contains(logs.String(), "notification email not sent") || !strings.Contains(logs.String(), "hook: smtp") {
		t.Errorf("log:\n%s", logs.String())
	}
}
