package daemon

import (
	"io"
	"net/http"
	"time"
)

// Limits bound what one daemon takes on.
type Limits struct {
	// MaxConcurrent bounds requests served at once; others wait up to
	// QueueWait for a slot, then get 503 with Retry-After. Default 512.
	MaxConcurrent int
	// QueueWait is how long a request waits for a slot. Default 5 s.
	QueueWait time.Duration
	// IdleIO is how long a request body read or a response write may make
	// no progress before the connection is dropped (slow clients). Default
	// 30 s.
	IdleIO time.Duration
}

func (l *Limits) defaults() {
	if l.MaxConcurrent <= 0 {
		l.MaxConcurrent = 512
	}
	if l.QueueWait <= 0 {
		l.QueueWait = 5 * time.Second
	}
	if l.IdleIO <= 0 {
		l.IdleIO = 30 * time.Second
	}
}

// bound limits concurrency and gives every body read and response write an
// idle deadline.
func bound(l Limits, h http.Handler) http.Handler {
	sem := make(chan struct{}, l.MaxConcurrent)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		defer func() { <-sem }()
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &idleReader{rc: rc, r: r.Body, idle: l.IdleIO}
		}
		h.ServeHTTP(&idleWriter{ResponseWriter: w, rc: rc, idle: l.IdleIO}, r)
	})
}

type idleReader struct {
	rc   *http.ResponseController
	r    io.ReadCloser
	idle time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	_ = i.rc.SetReadDeadline(time.Now().Add(i.idle))
	return i.r.Read(p)
}

func (i *idleReader) Close() error { return i.r.Close() }

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
