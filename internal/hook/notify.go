package hook

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Severity is a notification's level, as EFM's: INFO < WARNING < SEVERE.
// It is unrelated to log levels.
type Severity int

const (
	Info Severity = iota
	Warning
	Severe
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "INFO"
	case Warning:
		return "WARNING"
	case Severe:
		return "SEVERE"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// ParseSeverity reads notification.level: INFO, WARNING or SEVERE, in any case.
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "INFO":
		return Info, nil
	case "WARNING":
		return Warning, nil
	case "SEVERE":
		return Severe, nil
	}
	return 0, fmt.Errorf("hook: %q is not a notification level; use INFO, WARNING or SEVERE", s)
}

// Notification is one event worth telling a person about.
type Notification struct {
	Severity Severity
	Subject  string // e.g. "Failover has completed on cluster main"
	Body     string // the message text
	Cluster  string
	Node     string    // address of the node that sends it
	At       time.Time // when it happened; zero: when Notify is called
}

// NotifyConfig is how notifications are delivered, from the properties
// file.
type NotifyConfig struct {
	Script     string        // script.notification: called as SCRIPT "<subject>" "<body>"
	UserEmail  []string      // user.email: recipients; none: no email
	FromEmail  string        // from.email; %h = Hostname; "" = "pgfm@%h"
	Level      Severity      // notification.level: the lowest severity delivered
	TextPrefix string        // notification.text.prefix: put first in the body
	SMTPAddr   string        // "" = "localhost:25" (EFM: a local mail server on port 25)
	Hostname   string        // for %h in FromEmail and the SMTP greeting; "" = os.Hostname()
	Timeout    time.Duration // bound of one Notify call; <= 0: DefaultTimeout
}

// Notifier delivers notifications by script and email.
type Notifier struct {
	cfg    NotifyConfig
	runner *Runner
	log    *slog.Logger
}

// NewNotifier returns a Notifier. runner runs script.notification; give it
// a Runner of its own (see Runner). log receives every notification.
func NewNotifier(cfg NotifyConfig, runner *Runner, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if runner == nil {
		runner = NewRunner(log)
	}
	if cfg.SMTPAddr == "" {
		cfg.SMTPAddr = "localhost:25"
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
		if cfg.Hostname == "" {
			cfg.Hostname = "localhost"
		}
	}
	if cfg.FromEmail == "" {
		cfg.FromEmail = "pgfm@%h"
	}
	cfg.FromEmail = strings.ReplaceAll(cfg.FromEmail, "%h", cfg.Hostname)
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Notifier{cfg: cfg, runner: runner, log: log}
}

// Subject returns the subject as delivered: "[SEVERITY] pgfm <subject>".
func (n *Notifier) Subject(note Notification) string {
	return fmt.Sprintf("[%s] pgfm %s", note.Severity, oneLine(note.Subject))
}

// Body returns the body as delivered: notification.text.prefix (on a line
// of its own), "pgfm node: <addr>", "Cluster name: <c>", a blank line and
// the text.
func (n *Notifier) Body(note Notification) string {
	var b strings.Builder
	if p := n.cfg.TextPrefix; p != "" {
		b.WriteString(p)
		if !strings.HasSuffix(p, "\n") {
			b.WriteByte('\n')
		}
	}
	fmt.Fprintf(&b, "pgfm node: %s\nCluster name: %s\n\n%s", note.Node, note.Cluster, note.Body)
	return b.String()
}

// Notify logs the notification (every severity) and, when its severity
// reaches notification.level, runs script.notification and sends the email,
// both at once. It returns when both are done or after the configured
// timeout, whichever is first; delivery failures are logged, not returned.
func (n *Notifier) Notify(ctx context.Context, note Notification) {
	if note.At.IsZero() {
		note.At = time.Now()
	}
	n.record(ctx, note)
	n.deliver(ctx, note)
}

// record logs the notification, whatever its severity.
func (n *Notifier) record(ctx context.Context, note Notification) {
	n.log.Log(ctx, logLevel(note.Severity), "notification", "severity", note.Severity.String(),
		"subject", note.Subject, "body", note.Body, "cluster", note.Cluster, "node", note.Node)
}

// deliver runs script.notification and sends the email when the
// severity reaches notification.level; see Notify.
func (n *Notifier) deliver(ctx context.Context, note Notification) {
	if note.Severity < n.cfg.Level || (n.cfg.Script == "" && len(n.cfg.UserEmail) == 0) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	subject, body := n.Subject(note), n.Body(note)

	var wg sync.WaitGroup
	if n.cfg.Script != "" {
		wg.Go(func() {
			env := map[string]string{
				"PGFM_CLUSTER": note.Cluster, "PGFM_NODE": note.Node, "PGFM_EVENT": note.Subject,
				"PGFM_SEVERITY": note.Severity.String(), "PGFM_TIME": note.At.UTC().Format(time.RFC3339Nano),
			}
			// The runner logs the result; the deadline of ctx bounds it.
			n.runner.run(ctx, "script.notification", n.cfg.Script, Placeholders{}, []string{subject, body}, env, n.cfg.Timeout)
		})
	}
	if len(n.cfg.UserEmail) > 0 {
		wg.Go(func() {
			msg := mailMessage(n.cfg.FromEmail, n.cfg.UserEmail, subject, body, note.At)
			if err := sendMail(ctx, n.cfg.SMTPAddr, n.cfg.Hostname, n.cfg.FromEmail, n.cfg.UserEmail, msg); err != nil {
				n.log.Warn("notification email not sent", "subject", subject, "smtp", n.cfg.SMTPAddr,
					"to", strings.Join(n.cfg.UserEmail, " "), "err", err)
				return
			}
			n.log.Debug("notification email sent", "subject", subject, "to", strings.Join(n.cfg.UserEmail, " "))
		})
	}
	wg.Wait()
}

func logLevel(s Severity) slog.Level {
	switch {
	case s >= Severe:
		return slog.LevelError
	case s == Warning:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// oneLine keeps a header value on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
