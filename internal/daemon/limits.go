package daemon

import (
	"container/list"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what one daemon takes on, so that slow, idle or
// unauthenticated clients cannot starve it:
//
//   - /healthz bypasses every limit; reads (GET, HEAD) and writes have
//     separate in-flight limits, so writes cannot starve reads nor reads
//     writes.
//   - A request holds its in-flight slot only while the daemon works on it:
//     while it waits for body bytes from the client the slot is free for
//     others, so requests trickling their bodies cannot use the limit up.
//   - A request body has a deadline as a whole: the time spent waiting
//     for it may not exceed BodyTimeout plus its Content-Length at
//     MinBodyRate (for a body of unknown length, the bytes received so far
//     at MinBodyRate), and no read may wait more than IdleIO for progress.
//     A body past its deadline gets 408 and the connection is closed.
//   - Connections per client address (IPv4 address, IPv6 /64) are bounded
//     by MaxConnsPerAddr, counting only connections that have not yet
//     presented an accepted credential: a new connection beyond the bound
//     closes that address's oldest such connection (an idle one first).
//     A connection is exempted once a write on it was authenticated (the
//     bearer token or an operator signature), so authenticated writers get
//     through even when an attacker holds many slow connections from the
//     same address, as on one host or behind one NAT.
//
// defaultMaxConnsPerAddr is Limits.MaxConnsPerAddr's default: room for an
// honest client's connection pool (256 publishers of `make loadtest` open
// theirs at once) while still bounding what one address can hold open.
const defaultMaxConnsPerAddr = 256

type Limits struct {
	// MaxConcurrent bounds writes (requests other than GET and HEAD)
	// served at once; others wait up to QueueWait for a slot, then get
	// 503 with Retry-After. Default 512.
	MaxConcurrent int
	// MaxReads bounds reads (GET, HEAD) served at once, likewise.
	// Default 512.
	MaxReads int
	// QueueWait is how long a request waits for a slot. Default 5 s.
	QueueWait time.Duration
	// IdleIO is how long a request body read or a response write may make
	// no progress before the connection is dropped (slow clients). Default
	// 30 s.
	IdleIO time.Duration
	// BodyTimeout is the part of a request body's deadline that does not
	// depend on its size. Default 10 s.
	BodyTimeout time.Duration
	// MinBodyRate (bytes per second) is the slowest upload accepted: it
	// adds Content-Length/MinBodyRate to the body's deadline. Default
	// 64 KiB/s.
	MinBodyRate int64
	// MaxConnsPerAddr bounds the connections of one client address that
	// have not presented an accepted credential. Default 256.
	MaxConnsPerAddr int
}

func (l *Limits) defaults() {
	if l.MaxConcurrent <= 0 {
		l.MaxConcurrent = 512
	}
	if l.MaxReads <= 0 {
		l.MaxReads = 512
	}
	if l.QueueWait <= 0 {
		l.QueueWait = 5 * time.Second
	}
	if l.IdleIO <= 0 {
		l.IdleIO = 30 * time.Second
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = 10 * time.Second
	}
	if l.MinBodyRate <= 0 {
		l.MinBodyRate = 64 << 10
	}
	if l.MaxConnsPerAddr <= 0 {
		l.MaxConnsPerAddr = defaultMaxConnsPerAddr
	}
}

// bound applies the in-flight limits and the body deadline.
func bound(l Limits, h http.Handler) http.Handler {
	writes := make(chan struct{}, l.MaxConcurrent)
	reads := make(chan struct{}, l.MaxReads)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(&idleWriter{ResponseWriter: w, rc: rc, idle: l.IdleIO}, r)
			return
		}
		sem := writes
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			sem = reads
		}
		t := time.NewTimer(l.QueueWait)
		select {
		case sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "daemon busy: too many requests in flight", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
		s := &slot{sem: sem, held: true, rc: rc}
		defer s.finish()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &bodyReader{s: s, r: r.Body, ctx: r.Context(), l: l, length: r.ContentLength}
		}
		h.ServeHTTP(&idleWriter{ResponseWriter: w, rc: rc, idle: l.IdleIO}, r)
	})
}

// slot is one request's in-flight slot. The body may be read from another
// goroutine than the handler's, and even after the handler returned (a
// reader stopped without waiting), so its state is under mu and nothing is
// done once finish ran.
type slot struct {
	mu   sync.Mutex
	sem  chan struct{}
	rc   *http.ResponseController
	held bool
	done bool
}

func (s *slot) release() {
	s.mu.Lock()
	if s.held {
		<-s.sem
		s.held = false
	}
	s.mu.Unlock()
}

func (s *slot) reacquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	if s.done || s.held {
		<-s.sem
	} else {
		s.held = true
	}
	s.mu.Unlock()
	return nil
}

// setReadDeadline sets the connection's read deadline while the request
// is still being served.
func (s *slot) setReadDeadline(t time.Time) {
	s.mu.Lock()
	if !s.done {
		_ = s.rc.SetReadDeadline(t)
	}
	s.mu.Unlock()
}

func (s *slot) finish() {
	s.mu.Lock()
	s.done = true
	if s.held {
		<-s.sem
		s.held = false
	}
	s.mu.Unlock()
}

// bodyReader gives a request body its whole-body deadline and frees the
// request's slot while a read waits for the client.
type bodyReader struct {
	s      *slot
	r      io.ReadCloser
	ctx    context.Context
	l      Limits
	length int64         // Content-Length, -1 when unknown
	n      int64         // bytes read so far
	waited time.Duration // time spent blocked in reads
	ended  bool
}

// deadline is when the read starting now must have returned: the body's
// whole budget (BodyTimeout plus its size at MinBodyRate) less the time
// already spent waiting for the client, and at most IdleIO. Only time
// blocked in reads counts, so a handler that is slow to read (waiting for
// a lock, writing to disk) does not use up its client's budget.
func (b *bodyReader) deadline(now time.Time) time.Time {
	size := max(b.length, b.n)
	budget := b.l.BodyTimeout + time.Duration(float64(size)/float64(b.l.MinBodyRate)*float64(time.Second))
	return now.Add(min(budget-b.waited, b.l.IdleIO))
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.ended {
		return b.r.Read(p)
	}
	t0 := time.Now()
	b.s.setReadDeadline(b.deadline(t0))
	b.s.release()
	n, err := b.r.Read(p)
	b.waited += time.Since(t0)
	b.n += int64(n)
	if err != nil {
		b.ended = true
		// The body is done: clear its deadline, or it would fire later
		// under the handler's work and cancel its context. A failed body
		// keeps it: net/http would otherwise wait for the rest of the
		// body (to reuse the connection) before sending the answer.
		if err == io.EOF {
			b.s.setReadDeadline(time.Time{})
		}
	}
	if rerr := b.s.reacquire(b.ctx); rerr != nil && err == nil {
		err = rerr
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.r.Close() }

type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (i *idleWriter) Write(p []byte) (int, error) {
	_ = i.rc.SetWriteDeadline(time.Now().Add(i.idle))
	return i.ResponseWriter.Write(p)
}

func (i *idleWriter) Flush() { _ = i.rc.Flush() }

func (i *idleWriter) Unwrap() http.ResponseWriter { return i.ResponseWriter }

// connTracker bounds the connections per client address that have not
// presented an accepted credential (see Limits.MaxConnsPerAddr). It hooks
// into http.Server's ConnContext and ConnState.
type connTracker struct {
	max int

	mu     sync.Mutex
	byAddr map[string]*list.List // unproven connections, oldest first
	conns  map[net.Conn]*trackedConn
	// onEvict, when set, is called for each connection closed for the
	// bound (metrics).
	onEvict func()
}

type trackedConn struct {
	t      *connTracker
	c      net.Conn
	addr   string
	elem   *list.Element // in t.byAddr[addr]; nil once proven or gone
	idle   bool
	proven bool
}

func newConnTracker(max int) *connTracker {
	return &connTracker{max: max, byAddr: map[string]*list.List{}, conns: map[net.Conn]*trackedConn{}}
}

type connKey struct{}

// addrKey is the unit the bound applies to: an IPv4 address or an IPv6 /64.
func addrKey(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// connContext registers a new connection; beyond the bound it closes the
// address's oldest unproven connection, preferring an idle one.
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	tc := &trackedConn{t: t, c: c, addr: addrKey(c.RemoteAddr())}
	var victim net.Conn
	t.mu.Lock()
	l := t.byAddr[tc.addr]
	if l == nil {
		l = list.New()
		t.byAddr[tc.addr] = l
	}
	tc.elem = l.PushBack(tc)
	t.conns[c] = tc
	if l.Len() > t.max {
		var v *trackedConn
		for e := l.Front(); e != nil && e != tc.elem; e = e.Next() {
			if x := e.Value.(*trackedConn); x.idle {
				v = x
				break
			}
		}
		if v == nil {
			v = l.Front().Value.(*trackedConn)
		}
		l.Remove(v.elem)
		v.elem = nil
		victim = v.c
	}
	t.mu.Unlock()
	if victim != nil {
		victim.Close()
		if t.onEvict != nil {
			t.onEvict()
		}
	}
	return context.WithValue(ctx, connKey{}, tc)
}

func (t *connTracker) connState(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.conns[c]
	if tc == nil {
		return
	}
	switch st {
	case http.StateIdle:
		tc.idle = true
	case http.StateActive:
		tc.idle = false
	case http.StateClosed, http.StateHijacked:
		t.drop(tc)
		delete(t.conns, c)
	}
}

// drop removes tc from its address's list; t.mu is held.
func (t *connTracker) drop(tc *trackedConn) {
	if tc.elem == nil {
		return
	}
	l := t.byAddr[tc.addr]
	l.Remove(tc.elem)
	tc.elem = nil
	if l.Len() == 0 {
		delete(t.byAddr, tc.addr)
	}
}

// unproven returns how many connections of addr count toward the bound.
func (t *connTracker) unproven(addr string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.byAddr[addr]; l != nil {
		return l.Len()
	}
	return 0
}

// authenticated exempts the connection r arrived on from the bound; it is
// api.Limits.OnAuthenticated.
func authenticated(r *http.Request) {
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	if tc == nil {
		return
	}
	tc.t.mu.Lock()
	tc.proven = true
	tc.t.drop(tc)
	tc.t.mu.Unlock()
}
