// Package admin serves a daemon's operator endpoints over HTTP: Prometheus
// /metrics, /healthz, a JSON /status, a processor's /verify and, when
// asked, /debug/pprof.
//
// It knows no daemon: it receives a registry, a status function and a health
// function. It registers nothing globally (its own ServeMux, its own
// registry), so one process may run several servers.
//
// Invariant: it only reads. Every endpoint reports what the functions and
// the registry it was given return (pprof: the Go runtime's profiles) and
// changes nothing in the daemon. /verify too: the check it runs reads the
// target files and the state, and writes neither.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the HTTP server. WriteTimeout leaves room for a 30-second
// /debug/pprof/profile (the pprof handlers extend their own deadline, but a
// plain handler cannot hang longer than this).
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 60 * time.Second
	// ShutdownTimeout bounds the wait for in-flight requests on stop.
	ShutdownTimeout = 5 * time.Second
	// MaxHeaderBytes bounds request headers.
	MaxHeaderBytes = 16 << 10
)

// Config configures a Server.
type Config struct {
	// Addr is the address the caller listens on, for messages only: Serve
	// takes the listener.
	Addr string
	// Registry is served on /metrics. New adds the Go runtime and process
	// collectors to it. Required.
	Registry *prometheus.Registry
	// Status returns the value served as JSON on /status (nil: 404).
	Status func() any
	// Healthy returns nil when the daemon is healthy; /healthz answers 503
	// with the error's text otherwise (nil: always healthy).
	Healthy func() error
	// Verify, when set, serves GET /verify?rate=BYTES_PER_SECOND: it runs a
	// check (rate < 0 when the query names none) and hands emit its
	// results, each sent as a JSON line and flushed at once. Returned
	// before the first emit, an error wrapping ErrBusy answers 429 and one
	// wrapping ErrUnavailable 404; after it, a last line
	// {"type":"error","error":...} ends the answer.
	Verify func(ctx context.Context, rate int64, emit func(v any) error) error
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
}

// Errors a Verify function wraps to choose the answer's status.
var (
	// ErrBusy: a check is running; only one runs at a time (429).
	ErrBusy = errors.New("admin: busy")
	// ErrUnavailable: the daemon has nothing to check (404).
	ErrUnavailable = errors.New("admin: unavailable")
)

// Validate reports every problem with c.
func (c Config) Validate() error {
	if c.Registry == nil {
		return errors.New("admin: registry is required")
	}
	return nil
}

// Server is the admin HTTP server.
type Server struct {
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	http *http.Server
}

// New validates cfg, registers the runtime collectors on cfg.Registry and
// builds the handlers.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("admin: register go collector: %w", err)
	}
	if err := cfg.Registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("admin: register process collector: %w", err)
	}
	s := &Server{cfg: cfg, log: log, mux: http.NewServeMux()}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Registry:          cfg.Registry, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	}))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /status", s.status)
	s.mux.HandleFunc("GET /verify", s.verify)
	if cfg.Pprof {
		s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.mux.HandleFunc("GET /{$}", s.index)
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Handler returns the server's handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln until ctx is done, then shuts down gracefully, waiting
// up to ShutdownTimeout for requests in flight. It returns nil after a clean
// stop and closes ln in any case. Serve may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("admin listening", "addr", ln.Addr().String(), "pprof", s.cfg.Pprof)
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close() // a pprof profile still running: cut it
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Healthy != nil {
		if err := s.cfg.Healthy(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Status == nil {
		http.NotFound(w, r)
		return
	}
	b, err := json.MarshalIndent(s.cfg.Status(), "", "  ")
	if err != nil {
		s.log.Warn("encode status", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n')) // the client went away: nothing to do
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "/metrics\n/healthz\n/status")
	if s.cfg.Verify != nil {
		fmt.Fprintln(w, "/verify")
	}
	if s.cfg.Pprof {
		fmt.Fprintln(w, "/debug/pprof/")
	}
}

// verify streams the results of cfg.Verify as JSON lines. A check at a
// bounded rate may run far longer than WriteTimeout: each line extends the
// write deadline by WriteTimeout, so only a client that stops reading is
// cut off.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Verify == nil {
		http.Error(w, "no /verify here: only a processor with a target dir has one", http.StatusNotFound)
		return
	}
	rate := int64(-1)
	if v := r.URL.Query().Get("rate"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("rate %q: want bytes per second, 0 for no limit", v), http.StatusBadRequest)
			return
		}
		rate = n
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	err := s.cfg.Verify(r.Context(), rate, func(v any) error {
		if !started {
			w.Header().Set("Content-Type", "application/jsonl")
			w.Header().Set("Cache-Control", "no-store")
			started = true
		}
		if err := rc.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
		return rc.Flush()
	})
	switch {
	case err == nil:
	case started:
		s.log.Warn("verify ended early", "err", err)
		_ = enc.Encode(map[string]string{"type": "error", "error": err.Error()}) // the client may be gone
	case errors.Is(err, ErrBusy):
		http.Error(w, err.Error(), http.StatusTooManyRequests)
	case errors.Is(err, ErrUnavailable):
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
