//go:build unix

package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// adminArgs turns on a daemon's admin endpoint on a free loopback port.
var adminArgs = []string{"--admin-address=127.0.0.1:0"}

// adminListeningRE matches the log line of an admin endpoint.
var adminListeningRE = regexp.MustCompile(`\bmsg="admin listening"\s(?:.*\s)?addr="?([^\s"]+)`)

// adminAddr waits for the current process of d to log its admin address.
func adminAddr(t *testing.T, d *Daemon) string {
	t.Helper()
	var addr string
	harness.WaitFor(t, startTimeout, func() error {
		m := adminListeningRE.FindSubmatch(d.LastLog())
		if m == nil {
			return fmt.Errorf("%s: no admin listening line yet", d.Name)
		}
		addr = string(m[1])
		return nil
	}, d)
	return addr
}

// httpGet returns the status code and body of GET http://addr+path.
func httpGet(addr, path string) (int, []byte, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// scrape reads /metrics at addr with the Prometheus text parser.
func scrape(addr string) (map[string]*dto.MetricFamily, error) {
	code, body, err := httpGet(addr, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return mfs, nil
}

// metric scrapes addr and returns the sum of the series of family name.
func metric(addr, name string) (float64, error) {
	mfs, err := scrape(addr)
	if err != nil {
		return 0, err
	}
	mf, ok := mfs[name]
	if !ok {
		return 0, fmt.Errorf("no %s in /metrics of %s", name, addr)
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		default:
			return 0, fmt.Errorf("%s: not a counter or gauge", name)
		}
	}
	return sum, nil
}

// waitMetric polls the metric until ok accepts its value.
func waitMetric(t *testing.T, timeout time.Duration, addr, name, want string, ok func(float64) bool, running ...*Daemon) float64 {
	t.Helper()
	var v float64
	harness.WaitFor(t, timeout, func() error {
		var err error
		if v, err = metric(addr, name); err != nil {
			return err
		}
		if !ok(v) {
			return fmt.Errorf("%s = %v, want %s", name, v, want)
		}
		return nil
	}, running...)
	return v
}

// targetBytes sums the sizes of the named files under dir.
func targetBytes(t *testing.T, dir string, names []string) int64 {
	t.Helper()
	var n int64
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestMetricsCountDelivered scrapes both daemons' /metrics during a real
// stream and checks, once the writers stop, that the counters equal what
// was actually delivered.
func TestMetricsCountDelivered(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target, adminArgs...)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, adminArgs...)
	padm, cadm := adminAddr(t, p), adminAddr(t, c)
	w := startWriters(t, mixedWriters("w", src, 3)...)

	// While the writers write: the counters move.
	waitMetric(t, 30*time.Second, padm, "thunder_processor_lines_written_total", "> 0", func(v float64) bool { return v > 0 }, p, c)
	waitMetric(t, 10*time.Second, padm, "thunder_processor_collectors_connected", "1", func(v float64) bool { return v == 1 }, p, c)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_connected", "1", func(v float64) bool { return v == 1 }, p, c)
	mid := waitMetric(t, 10*time.Second, cadm, "thunder_collector_lines_sent_total", "> 0", func(v float64) bool { return v > 0 }, p, c)
	for _, m := range []struct{ addr, name string }{
		{padm, "go_goroutines"}, {padm, "process_open_fds"}, {padm, "thunder_processor_commits_total"},
		{cadm, "go_goroutines"}, {cadm, "thunder_collector_streams"}, {cadm, "thunder_collector_open_files"},
	} {
		if _, err := metric(m.addr, m.name); err != nil {
			t.Error(err)
		}
	}

	expect := w.Wait()
	var lines uint64
	names := map[string]bool{}
	for _, e := range expect {
		lines += e.Lines
		names[e.Name] = true
	}
	if float64(lines) <= mid {
		t.Logf("the writers finished before the mid-stream scrape (%v of %d lines sent)", mid, lines)
	}
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	var files []string
	for n := range names {
		files = append(files, n)
	}
	wantBytes := targetBytes(t, target, files)

	// Delivered lines are on disk before they are counted; poll.
	waitMetric(t, 10*time.Second, padm, "thunder_processor_lines_written_total", fmt.Sprint(lines), func(v float64) bool { return v == float64(lines) }, p, c)
	waitMetric(t, 10*time.Second, padm, "thunder_processor_bytes_written_total", fmt.Sprint(wantBytes), func(v float64) bool { return v == float64(wantBytes) }, p, c)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_bytes_acked_total", fmt.Sprint(wantBytes), func(v float64) bool { return v == float64(wantBytes) }, p, c)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_lines_sent_total", fmt.Sprint(lines), func(v float64) bool { return v == float64(lines) }, p, c)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_lag_bytes", "0", func(v float64) bool { return v == 0 }, p, c)

	for _, addr := range []string{padm, cadm} {
		if code, body, err := httpGet(addr, "/healthz"); err != nil || code != 200 {
			t.Errorf("GET %s/healthz = %d %q %v, want 200", addr, code, body, err)
		}
	}
	// --pprof is off: no profiles on the admin address.
	if code, _, err := httpGet(padm, "/debug/pprof/"); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without --pprof = %d %v, want 404", code, err)
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}

// TestLagWhileProcessorDown kills the processor while writers write: the
// collector's lag must rise and its health fail, then, once the processor
// is back, the lag must fall back to 0.
func TestLagWhileProcessorDown(t *testing.T) {
	skipShort(t)
	target, src := t.TempDir(), t.TempDir()
	p := startProcessor(t, target, adminArgs...)
	c := startCollector(t, "host", src, offsetsDB(t), p.Addr, append(adminArgs, "--pprof")...)
	cadm := adminAddr(t, c)
	const lines = 30_000 // at writerRate: still writing while the processor is down
	w := startWriters(t,
		writerSpec{ID: "x", Dir: src, Name: "x.log", Contract: linecheck.LockedAppend, Lines: lines, Rate: writerRate},
		writerSpec{ID: "y", Dir: src, Name: "sub/y.log", Contract: linecheck.OpenWriteClose, Lines: lines, Rate: writerRate},
	)
	waitLines(t, 30*time.Second, target, 1000, p, c)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_connected", "1", func(v float64) bool { return v == 1 }, p, c)

	p.Kill()
	// Lines keep coming, nothing is acknowledged: the lag grows past
	// many lines' worth.
	const minLag = 100 * linecheck.DefaultLineBytes
	lag := waitMetric(t, 20*time.Second, cadm, "thunder_collector_lag_bytes", fmt.Sprintf(">= %d", minLag), func(v float64) bool { return v >= minLag }, c)
	t.Logf("lag with the processor down: %v bytes", lag)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_connected", "0", func(v float64) bool { return v == 0 }, c)
	if code, body, err := httpGet(cadm, "/healthz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("collector /healthz with the processor down = %d %q %v, want 503", code, body, err)
	}
	mfs, err := scrape(cadm)
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs["thunder_collector_stream_lag_bytes"].GetMetric()) == 0 {
		t.Error("no per-stream lag series while lagging")
	}
	if code, _, err := httpGet(cadm, "/debug/pprof/goroutine?debug=1"); err != nil || code != 200 {
		t.Errorf("GET /debug/pprof/goroutine with --pprof = %d %v, want 200", code, err)
	}

	p.Restart()
	expect := w.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	waitMetric(t, 20*time.Second, cadm, "thunder_collector_lag_bytes", "0", func(v float64) bool { return v == 0 }, p, c)
	waitMetric(t, 10*time.Second, cadm, "thunder_collector_connected", "1", func(v float64) bool { return v == 1 }, p, c)
	if code, body, err := httpGet(cadm, "/healthz"); err != nil || code != 200 {
		t.Errorf("collector /healthz after the processor returned = %d %q %v, want 200", code, body, err)
	}
	padm := adminAddr(t, p) // a new port after the restart
	waitMetric(t, 10*time.Second, padm, "thunder_processor_collectors_connected", "1", func(v float64) bool { return v == 1 }, p, c)
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
}

// runThunder runs the thunder binary with args and returns its combined
// output and error, giving up after timeout.
func runThunder(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
