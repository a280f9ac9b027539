package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// One port serves load balancers in plain HTTP and agents and the pgfm
// command in TLS: a connection's first byte says which (a TLS handshake
// starts with 0x16, an HTTP request with a letter).
const tlsHandshake = 0x16

// firstByteWait bounds how long a connection may stay silent before it
// says what it speaks: a silent connection holds one of the few slots.
const firstByteWait = 5 * time.Second

// publicPaths answer without TLS: the load balancers' health checks,
// answered from what the agent already holds (health.go).
var publicPaths = map[string]bool{
	"/health": true, "/primary": true, "/standby": true, "/sync": true, "/synchronous": true,
}

// guard lets only public paths through without a verified certificate of
// this cluster.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !publicPaths[r.URL.Path] && !verified(r) {
			writeError(w, Errorf(http.StatusForbidden,
				"%s needs TLS with a certificate of this cluster; use the pgfm command on a node of the cluster, which finds the agent's credentials itself", r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func verified(r *http.Request) bool { return r.TLS != nil && len(r.TLS.VerifiedChains) > 0 }

// sortingListener hands the HTTP server plain connections and TLS ones
// (as *tls.Conn, so the server handshakes and fills Request.TLS), at most
// max at a time and perIP from one address; more from one address are
// closed, more in all wait in the kernel's queue.
type sortingListener struct {
	inner   net.Listener
	tlsConf func() *tls.Config // nil: TLS not ready, such connections are closed
	conns   chan net.Conn
	errc    chan error
	done    chan struct{}
	once    sync.Once
	slots   chan struct{}
	perIP   int

	mu   sync.Mutex
	open map[string]int
}

func newSortingListener(inner net.Listener, tlsConf func() *tls.Config, max int) *sortingListener {
	max = cmpMax(max, 1)
	l := &sortingListener{
		inner: inner, tlsConf: tlsConf,
		conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{}),
		slots: make(chan struct{}, max), perIP: cmpMax(max/4, 4), open: map[string]int{},
	}
	go l.acceptLoop()
	return l
}

func cmpMax(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func (l *sortingListener) acceptLoop() {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.inner.Accept()
		if err != nil {
			<-l.slots
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		ip := remoteIP(c)
		if !l.take(ip) {
			c.Close()
			<-l.slots
			continue
		}
		go l.sort(&slotConn{Conn: c, release: func() { l.give(ip); <-l.slots }})
	}
}

func (l *sortingListener) take(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.perIP {
		return false
	}
	l.open[ip]++
	return true
}

func (l *sortingListener) give(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// sort waits for the first byte and passes the connection on.
func (l *sortingListener) sort(c *slotConn) {
	_ = c.SetReadDeadline(time.Now().Add(firstByteWait))
	c.r = bufio.NewReader(c.Conn)
	first, err := c.r.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var out net.Conn = c
	if first[0] == tlsHandshake {
		conf := l.tlsConf()
		if conf == nil {
			c.Close()
			return
		}
		out = tls.Server(c, conf)
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

func (l *sortingListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *sortingListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.inner.Close()
}

func (l *sortingListener) Addr() net.Addr { return l.inner.Addr() }

func remoteIP(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// slotConn reads through the peeked bytes and frees its slot once closed.
type slotConn struct {
	net.Conn
	r       *bufio.Reader
	release func()
	once    sync.Once
}

func (c *slotConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
