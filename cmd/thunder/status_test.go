package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/admin"
	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/processor"
)

// fakeDaemon serves the admin endpoint of a daemon whose status and health
// the test sets.
type fakeDaemon struct {
	addr string

	mu     sync.Mutex
	status func() any // called for every request
	health error
}

func (f *fakeDaemon) setHealth(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.health = err
}

func startFake(t *testing.T, status any) *fakeDaemon {
	t.Helper()
	return startFakeFunc(t, func() any { return status })
}

func startFakeFunc(t *testing.T, status func() any) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{status: status}
	srv, err := admin.New(admin.Config{
		Registry: prometheus.NewRegistry(),
		Status: func() any {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.status()
		},
		Healthy: func() error {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.health
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	f.addr = strings.TrimPrefix(ts.URL, "http://")
	return f
}

func processorStatus(bytes, lines uint64) processor.Status {
	since := time.Now().Add(-3 * time.Minute)
	return processor.Status{
		Name: "central", TargetDir: "/srv/logs", LastCommit: time.Now(),
		Totals: processor.CollectorCounters{Bytes: bytes * 2, Lines: lines * 2},
		Collectors: []processor.CollectorStatus{
			{Name: "web-1", Peer: "10.0.0.1:40000", Since: since, Streams: 3, CollectorCounters: processor.CollectorCounters{Bytes: bytes, Lines: lines}},
			{Name: "web-2", Peer: "10.0.0.2:40000", Since: since, Streams: 1, CollectorCounters: processor.CollectorCounters{Bytes: bytes, Lines: lines}},
		},
	}
}

func collectorStatus(acked uint64) collector.Status {
	return collector.Status{
		Stats: collector.Stats{
			Name: "web-1", Connected: true, Addr: "logs:7357", Streams: 2, OpenFiles: 2,
			IdentityKey: "ed25519:0zMhuV65Ti7Cd6tCuVRQ3gj99WMUflb8wSajDA9nR90=",
			Processors:  []collector.ProcessorLink{{Addr: "logs:7357", Connected: true, Streams: 2}, {Addr: "logs-2:7357"}},
			SentBytes:   acked + 100, SentLines: acked / 10, AckedBytes: acked, LagBytes: 5000, Rotations: 4, Deletions: 3,
		},
		Updated: time.Now(),
		Top: []collector.StreamStatus{
			{Name: "app/slow.log", Path: "app/slow.log", ID: "1", Size: int64(acked) + 5000, Acked: acked, Lag: 5000},
			{Name: "app/fast.log", Path: "app/fast.log", ID: "2", Size: 10, Acked: 10},
		},
	}
}

func TestStatus(t *testing.T) {
	p := startFake(t, processorStatus(1<<20, 1000))
	c := startFake(t, collectorStatus(1<<20))
	tests := []struct {
		name string
		addr string
		want []string
	}{
		{"processor", p.addr, []string{`processor "central"`, "/srv/logs", "healthy", "web-1", "10.0.0.1:40000", "web-2", "1.0 MiB", "2000 lines", "3m0s"}},
		{"collector", c.addr, []string{`collector "web-1"`, "connected to logs:7357", "processor logs-2:7357:", "down", "up, 2 streams", "lag:", "4.9 KiB", "app/slow.log", "4, 3 deleted", "identity:", "ed25519:0zMhuV65Ti7Cd6tCuVRQ3gj99WMUflb8wSajDA9nR90="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCmd(t, "status", "--admin-address="+tt.addr)
			if err != nil {
				t.Fatalf("status: %v\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("status output lacks %q:\n%s", w, out)
				}
			}
			// The most lagging stream comes first.
			if i, j := strings.Index(out, "slow.log"), strings.Index(out, "fast.log"); tt.name == "collector" && (i < 0 || j < i) {
				t.Errorf("streams not sorted by lag:\n%s", out)
			}
		})
	}
}

// TestStatusRefused: a file whose name the processor refuses is shown
// with the count, the processor and its reason.
func TestStatusRefused(t *testing.T) {
	st := collectorStatus(1 << 20)
	st.RefusedFiles = 1
	st.Refused = []collector.RefusedFile{{
		Name: "x/app.log", Path: "x/app.log", Addr: "logs:7357", Reason: "x/app.log: not a regular file",
		Since: time.Now().Add(-2 * time.Minute), Tries: 3, NextRetry: time.Now().Add(time.Minute),
	}}
	c := startFake(t, st)
	out, _, err := runCmd(t, "status", "--admin-address="+c.addr)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, w := range []string{"refused files:", "1, held undelivered", "REFUSED NAME", "x/app.log", "logs:7357", "not a regular file", "2m0s"} {
		if !strings.Contains(out, w) {
			t.Errorf("status output lacks %q:\n%s", w, out)
		}
	}
}

// TestStatusMismatch: a file in digest mismatch is shown with the
// processor and both digests, and the collector is unhealthy.
func TestStatusMismatch(t *testing.T) {
	st := collectorStatus(1 << 20)
	st.MismatchFiles, st.DigestMismatches = 1, 1
	st.Mismatched = []collector.MismatchedFile{{
		Name: "x/app.log", Path: "x/app.log.20261124T115434.123456789Z.rotated", Addr: "logs:7357", Offset: 4096,
		Digest: "0badf00d", ProcessorDigest: "0badf00c", Since: time.Now().Add(-2 * time.Minute),
	}}
	c := startFake(t, st)
	c.setHealth(errors.New("1 file(s) whose processor's digest differs from the collector's: x/app.log"))
	out, _, err := runCmd(t, "status", "--admin-address="+c.addr)
	if err == nil || !strings.Contains(out, "unhealthy: 1 file(s) whose processor's digest differs from the collector's: x/app.log") {
		t.Errorf("status of a collector in mismatch: error %v, want unhealthy naming the file\n%s", err, out)
	}
	for _, w := range []string{"DIGEST MISMATCH:", "MISMATCHED NAME", "x/app.log.20261124T115434.123456789Z.rotated", "logs:7357", "4096", "0badf00d", "0badf00c", "2m0s"} {
		if !strings.Contains(out, w) {
			t.Errorf("status output lacks %q:\n%s", w, out)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	c := startFake(t, collectorStatus(42))
	out, _, err := runCmd(t, "status", "--json", "--admin-address="+c.addr)
	if err != nil {
		t.Fatal(err)
	}
	var got collector.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if got.Name != "web-1" || got.AckedBytes != 42 {
		t.Errorf("--json: %+v", got)
	}
}

func TestStatusUnhealthy(t *testing.T) {
	p := startFake(t, processorStatus(1, 1))
	p.setHealth(errors.New("last commit failed: no space left on device"))
	out, _, err := runCmd(t, "status", "--admin-address="+p.addr)
	if err == nil || !strings.Contains(err.Error(), p.addr) {
		t.Errorf("unhealthy daemon: error %v, want one naming the address", err)
	}
	// The reason once, in the status or in the error, not in both.
	if n := strings.Count(out+err.Error(), "no space left"); n != 1 {
		t.Errorf("unhealthy daemon: the reason is printed %d times, want once:\n%s\nerror: %v", n, out, err)
	}
	if _, _, err := runCmd(t, "status", "--json", "--admin-address="+p.addr); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("unhealthy daemon, --json: error %v, want one naming the cause", err)
	}
	if !strings.Contains(out, "UNHEALTHY") || !strings.Contains(out, "web-1") {
		t.Errorf("unhealthy daemon: status not printed:\n%s", out)
	}
}

func TestStatusUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	for _, cmd := range [][]string{{"status"}, {"status", "--json"}, {"top", "--count=1"}} {
		_, _, err := runCmd(t, append(cmd, "--admin-address="+addr)...)
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("%q against a dead address: error %v, want one naming %s", cmd, err, addr)
		}
	}
}

func TestStatusNotThunder(t *testing.T) {
	f := startFake(t, map[string]int{"x": 1})
	if _, _, err := runCmd(t, "status", "--admin-address="+f.addr); err == nil || !strings.Contains(err.Error(), "not a thunder admin endpoint") {
		t.Errorf("status of an unknown shape: error %v, want 'not a thunder admin endpoint'", err)
	}
}

// TestStatusNotFound: a web server that is not thunder's gets one line
// saying so, not its 404 page.
func TestStatusNotFound(t *testing.T) {
	page := "<html><body>" + strings.Repeat("nothing here ", 100) + "</body></html>"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, page, http.StatusNotFound)
	}))
	t.Cleanup(ts.Close)
	addr := strings.TrimPrefix(ts.URL, "http://")
	_, _, err := runCmd(t, "status", "--admin-address="+addr)
	if err == nil || !strings.Contains(err.Error(), addr+" is not a thunder admin endpoint") || strings.Contains(err.Error(), "nothing here") {
		t.Errorf("status against a 404 server: error %v, want one line saying it is not a thunder admin endpoint", err)
	}
}

// TestStatusDataPort: the data port of a real processor is recognized by
// its wire Error answer.
func TestStatusDataPort(t *testing.T) {
	p := harness.StartProcessor(t, t.TempDir())
	_, _, err := runCmd(t, "status", "--admin-address="+p.Addr)
	if err == nil || !strings.Contains(err.Error(), "data port") || !strings.Contains(err.Error(), "--admin-address") {
		t.Errorf("status against the data port: error %v, want 'this is the data port, use --admin-address'", err)
	}
}

func TestFmtBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {10 << 20, "10.0 MiB"}, {3 << 30, "3.0 GiB"},
	}
	for _, tt := range tests {
		if got := fmtBytes(tt.n); got != tt.want {
			t.Errorf("fmtBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
