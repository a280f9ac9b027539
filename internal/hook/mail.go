package hook

import (
	"context"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// mailMessage renders a plain-text message; smtp's data writer turns its
// \n into \r\n and escapes lines starting with a dot.
func mailMessage(from string, to []string, subject, body string, at time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\n", oneLine(from))
	fmt.Fprintf(&b, "To: %s\n", oneLine(strings.Join(to, ", ")))
	fmt.Fprintf(&b, "Subject: %s\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\n", at.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	b.WriteString(strings.ReplaceAll(body, "\r\n", "\n"))
	if !strings.HasSuffix(body, "\n") {
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// sendMail delivers msg through the SMTP server at addr (a local relay, as
// EFM expects: no TLS, no authentication). Every step honours ctx: its
// deadline is the connection's, and cancelling it closes the connection.
func sendMail(ctx context.Context, addr, hostname, from string, to []string, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("hook: smtp: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("hook: smtp %s: greeting: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello(hostname); err != nil {
		return fmt.Errorf("hook: smtp %s: EHLO: %w", addr, err)
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("hook: smtp %s: MAIL FROM %s: %w", addr, from, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("hook: smtp %s: RCPT TO %s: %w", addr, rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("hook: smtp %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("hook: smtp %s: DATA: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("hook: smtp %s: end of DATA: %w", addr, err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("hook: smtp %s: QUIT: %w", addr, err)
	}
	return nil
}
