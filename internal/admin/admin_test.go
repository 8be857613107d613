package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/admin"
)

type status struct {
	Name  string `json:"name"`
	Lines int    `json:"lines"`
}

func newServer(t *testing.T, cfg admin.Config) *admin.Server {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := admin.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	lines := prometheus.NewCounter(prometheus.CounterOpts{Name: "thunder_test_lines_total", Help: "Test."})
	reg.MustRegister(lines)
	lines.Add(7)
	var unhealthy error
	s := newServer(t, admin.Config{
		Registry: reg,
		Status:   func() any { return status{Name: "p1", Lines: 7} },
		Healthy:  func() error { return unhealthy },
	})
	h := s.Handler()

	tests := []struct {
		name, method, path string
		code               int
		contains           []string
	}{
		{"metrics", "GET", "/metrics", 200, []string{"thunder_test_lines_total 7", "go_goroutines ", "process_cpu_seconds_total "}},
		{"healthz", "GET", "/healthz", 200, []string{"ok"}},
		{"status", "GET", "/status", 200, []string{`"name": "p1"`, `"lines": 7`}},
		{"index", "GET", "/", 200, []string{"/metrics", "/healthz", "/status"}},
		{"no pprof", "GET", "/debug/pprof/", 404, nil},
		{"unknown", "GET", "/nope", 404, nil},
		{"wrong method", "POST", "/status", 405, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, h, tt.method, tt.path)
			if code != tt.code {
				t.Fatalf("%s %s = %d, want %d\n%s", tt.method, tt.path, code, tt.code, body)
			}
			for _, want := range tt.contains {
				if !strings.Contains(body, want) {
					t.Errorf("%s %s: body lacks %q:\n%s", tt.method, tt.path, want, body)
				}
			}
		})
	}

	unhealthy = errors.New("last commit failed: disk full")
	code, body := get(t, h, "GET", "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Errorf("unhealthy /healthz = %d %q, want 503 with the error", code, body)
	}
}

func TestStatusJSON(t *testing.T) {
	s := newServer(t, admin.Config{Status: func() any { return status{Name: "c1", Lines: 3} }})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got status
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	if want := (status{Name: "c1", Lines: 3}); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

func TestNoStatusFunc(t *testing.T) {
	s := newServer(t, admin.Config{})
	if code, _ := get(t, s.Handler(), "GET", "/status"); code != http.StatusNotFound {
		t.Errorf("/status without a Status func = %d, want 404", code)
	}
	if code, body := get(t, s.Handler(), "GET", "/healthz"); code != 200 {
		t.Errorf("/healthz without a Healthy func = %d %q, want 200", code, body)
	}
}

func TestPprof(t *testing.T) {
	s := newServer(t, admin.Config{Pprof: true})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if code, body := get(t, s.Handler(), "GET", path); code != 200 {
			t.Errorf("GET %s = %d, want 200\n%s", path, code, body)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := admin.New(admin.Config{}); err == nil {
		t.Error("New without a registry: no error")
	}
	// The runtime collectors are registered once per registry: a second
	// server on the same registry is a mistake New reports.
	reg := prometheus.NewRegistry()
	newServer(t, admin.Config{Registry: reg})
	if _, err := admin.New(admin.Config{Registry: reg, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Error("second New on one registry: no error")
	}
}

// TestServe runs the server on a loopback listener and stops it.
func TestServe(t *testing.T) {
	s := newServer(t, admin.Config{Status: func() any { return status{Name: "x"} }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := client.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("server still answers after Serve returned")
	}
}

// TestServeListenerError returns an error when the listener fails.
func TestServeListenerError(t *testing.T) {
	s := newServer(t, admin.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Serve(t.Context(), ln); err == nil {
		t.Error("Serve on a closed listener = nil, want an error")
	}
}
