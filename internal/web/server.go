package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server is an HTTP server that drains in-flight requests on shutdown.
type Server struct {
	Addr    string        // listen address, e.g. ":8002" (port 0 picks one)
	Handler http.Handler  // the service's engine
	Drain   time.Duration // how long shutdown waits for in-flight requests
	Logger  *slog.Logger
	// OnListen, when set, is called with the bound address once listening.
	OnListen func(net.Addr)
}

// Run listens and serves until ctx is cancelled, then stops accepting,
// waits up to Drain for in-flight requests and returns. A taken port is
// reported clearly.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is another process using the port?): %w", s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	drain := s.Drain
	if drain <= 0 {
		drain = 10 * time.Second
	}
	// inFlight counts requests being handled: at the end of the drain, a
	// connection that was opened but never carried a request (net/http
	// waits five seconds before it calls one idle) loses nothing.
	var inFlight atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		s.Handler.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.OnListen != nil {
		s.OnListen(ln.Addr())
	}
	log.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests", "timeout", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		if n := inFlight.Load(); n > 0 {
			return fmt.Errorf("drain: %d requests still in flight: %w", n, err)
		}
		log.Info("drained: closed connections that carried no request")
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
