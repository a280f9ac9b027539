package testenv

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from its address to a target and can
// cut them as a network partition would: silently, without closing them.
type Proxy struct {
	ln     net.Listener
	target string
	ctx    context.Context // ends with Close: stops dials in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	closed bool
	links  map[*link]struct{}
}

// link is one client connection and, once dialled, its connection to the
// target.
type link struct {
	frozen atomic.Bool   // set by Cut: never forward again
	done   chan struct{} // closed by close

	mu             sync.Mutex
	client, server net.Conn
	closed         bool
}

// NewProxy listens on listenHost at a free port and forwards to target
// (host:port) until the test ends.
func NewProxy(t testing.TB, listenHost, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, strconv.Itoa(FreePort(t, listenHost))))
	if err != nil {
		t.Fatalf("testenv: proxy listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, ctx: ctx, cancel: cancel, links: map[*link]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr is where the proxy listens, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut partitions: open connections stop forwarding either way (what
// arrives is dropped; a write under way may still finish) but stay open,
// and new connections are accepted but never forwarded.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for l := range p.links {
		l.frozen.Store(true)
	}
}

// Restore heals a cut: it closes the connections the cut held, so their
// clients notice and reconnect, and forwards new connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	var held []*link
	for l := range p.links {
		if l.frozen.Load() {
			held = append(held, l)
			delete(p.links, l)
		}
	}
	p.cut = false
	p.mu.Unlock()
	for _, l := range held {
		l.close()
	}
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	links := p.links
	p.links = map[*link]struct{}{}
	p.mu.Unlock()
	p.ln.Close()
	p.cancel()
	for l := range links {
		l.close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		l.frozen.Store(p.cut)
		p.mu.Unlock()
		if !l.frozen.Load() {
			// Held connections are left alone: not read, not dialled.
			p.wg.Go(func() { p.forward(l) })
		}
	}
}

// forward dials the target and pumps both ways until either side ends,
// then closes both.
func (p *Proxy) forward(l *link) {
	var d net.Dialer
	s, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil || !l.setServer(s) {
		if s != nil {
			s.Close()
		}
		p.drop(l)
		return
	}
	var pumps sync.WaitGroup
	pumps.Go(func() { l.pump(s, l.client) })
	pumps.Go(func() { l.pump(l.client, s) })
	pumps.Wait()
	p.drop(l)
}

// pump copies src to dst, closing the link when either side ends (no
// half-close). Once the link is frozen it forwards nothing more and,
// rather than close anything, waits for Restore or Close.
func (l *link) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if l.frozen.Load() {
			<-l.done
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	l.close()
}

// drop closes l and forgets it.
func (p *Proxy) drop(l *link) {
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// setServer records the target connection unless l was closed meanwhile.
func (l *link) setServer(s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = s
	return true
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
	close(l.done)
}
