package collector_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/offsets"
	"thunder/internal/wire"
)

func TestStreamsAndResumesAfterRestart(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	// The offsets DB may live in the source dir: it is never streamed.
	db := filepath.Join(src, "offsets.db")
	appendFile(t, filepath.Join(src, "a.log"), "a1\na2\n")
	appendFile(t, filepath.Join(src, "sub", "b.log"), "b1\n")

	c := mustCollector(t, baseConfig(t, src, db, p.addr))
	waitTargets(t, p.dir, map[string]string{"a.log": "a1\na2\n", "sub/b.log": "b1\n"})
	// New files and directories, and appends, while running.
	appendFile(t, filepath.Join(src, "sub2", "deep", "c.log"), "c1\n")
	appendFile(t, filepath.Join(src, "a.log"), "a3\n")
	want := map[string]string{"a.log": "a1\na2\na3\n", "sub/b.log": "b1\n", "sub2/deep/c.log": "c1\n"}
	waitTargets(t, p.dir, want)
	harness.WaitFor(t, waitTimeout, func() error {
		if got, want := c.c.Stats().AckedBytes, uint64(len("a1\na2\na3\nb1\nc1\n")); got != want {
			return fmt.Errorf("AckedBytes = %d, want %d", got, want)
		}
		return nil
	})
	c.stop()
	// Run "saves offsets" when it stops: every acknowledged offset is in
	// the DB.
	odb, err := offsets.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := odb.Load()
	odb.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if got := len(want[r.Name]); r.Acked != uint64(got) {
			t.Errorf("offsets DB after stop: %s acked %d, want %d (everything was acknowledged)", r.Name, r.Acked, got)
		}
	}
	if len(recs) != 3 {
		t.Errorf("offsets DB holds %d records, want 3", len(recs))
	}

	// While the collector is down.
	appendFile(t, filepath.Join(src, "a.log"), "a4\n")
	appendFile(t, filepath.Join(src, "sub", "b.log"), "b2\n")
	appendFile(t, filepath.Join(src, "d.log"), "d1\n")
	want["a.log"] += "a4\n"
	want["sub/b.log"] += "b2\n"
	want["d.log"] = "d1\n"

	c2 := mustCollector(t, baseConfig(t, src, db, p.addr))
	waitTargets(t, p.dir, want)
	// Stats are counted just after a frame is queued: poll.
	waitStats(t, c2, func(st collector.Stats) error {
		if got, want := st.SentBytes, uint64(len("a4\nb2\nd1\n")); got != want {
			return fmt.Errorf("restarted collector sent %d bytes, want only the %d new ones", got, want)
		}
		return nil
	})
	for _, f := range files(t, p.dir) {
		if strings.Contains(f, "offsets.db") {
			t.Errorf("target dir holds %s: the offsets DB was streamed", f)
		}
	}
	harness.WaitFor(t, waitTimeout, func() error { // Streams is refreshed once a second
		if st := c2.c.Stats(); st.Streams != 4 || !st.Connected || st.Connects != 1 {
			return fmt.Errorf("Stats() = %+v, want 4 streams, connected once", st)
		}
		return nil
	})
}

func TestPartialLineHeldBack(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	c := mustCollector(t, baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr))
	path := filepath.Join(src, "p.log")
	appendFile(t, path, "first\npart")
	waitTargets(t, p.dir, map[string]string{"p.log": "first\n"})
	// A later file is delivered after the partial line was seen.
	appendFile(t, filepath.Join(src, "marker.log"), "m\n")
	waitTargets(t, p.dir, map[string]string{"marker.log": "m\n"})
	if err := targetIs(p.dir, "p.log", "first\n"); err != nil {
		t.Fatalf("partial line sent: %v", err)
	}
	waitStats(t, c, func(st collector.Stats) error {
		if st.SentBytes != uint64(len("first\nm\n")) {
			return fmt.Errorf("SentBytes = %d, want %d", st.SentBytes, len("first\nm\n"))
		}
		return nil
	})
	appendFile(t, path, "ial\n")
	waitTargets(t, p.dir, map[string]string{"p.log": "first\npartial\n"})
	if st := c.c.Stats(); st.LinesFlushed != 0 || st.LinesSplit != 0 {
		t.Errorf("Stats() = %+v, want no flushed or split lines", st)
	}
}

func TestLongLineSplit(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	// MaxLineBytes = ChunkBytes makes the split independent of timing
	// (PROTOCOL.md Open point 8).
	cfg.ChunkBytes, cfg.MaxLineBytes = 4096, 4096
	c := mustCollector(t, cfg)
	long := strings.Repeat("x", 10000)
	appendFile(t, filepath.Join(src, "long.log"), "short\n"+long+"\nafter\n")
	want := "short\n" + long[:4096] + "\n" + long[4096:8192] + "\n" + long[8192:] + "\nafter\n"
	waitTargets(t, p.dir, map[string]string{"long.log": want})
	// Offsets stay source offsets: the added newlines are not counted.
	n := uint64(len("short\n" + long + "\nafter\n"))
	waitStats(t, c, func(st collector.Stats) error {
		if st.LinesSplit != 2 || st.SentBytes != n || st.AckedBytes != n {
			return fmt.Errorf("Stats() split %d, sent %d, acked %d; want 2, %d, %d", st.LinesSplit, st.SentBytes, st.AckedBytes, n, n)
		}
		return nil
	})
}

func rotatedFiles(t *testing.T, dir string) []string {
	var out []string
	for _, f := range files(t, dir) {
		if strings.HasSuffix(f, collector.RotatedSuffix) {
			out = append(out, f)
		}
	}
	return out
}

func TestRotation(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.RotateSize = 64 << 10
	c := mustCollector(t, cfg)

	// 1 MiB of 100-byte lines, ten lines per open/write/close.
	all := lines("rot", 0, 10486, 100)
	path := filepath.Join(src, "app.log")
	for i := 0; i < len(all); i += 1000 {
		appendFile(t, path, all[i:min(i+1000, len(all))])
	}
	waitTargets(t, p.dir, map[string]string{"app.log": all})
	harness.WaitFor(t, waitTimeout, func() error {
		if r := rotatedFiles(t, src); len(r) > 0 {
			return fmt.Errorf("rotated files left: %v", r)
		}
		// Counted just after the unlink.
		if st := c.c.Stats(); st.Rotations < 1 || st.Deletions != st.Rotations {
			return fmt.Errorf("Stats() rotations %d, deletions %d; want ≥ 1 and all rotated files deleted", st.Rotations, st.Deletions)
		}
		return nil
	})
	left := files(t, src)
	if len(left) > 1 || len(left) == 1 && left[0] != "app.log" {
		t.Errorf("source dir holds %v, want at most the live file", left)
	}
	if err := targetIs(p.dir, "app.log", all); err != nil {
		t.Fatal(err)
	}
	if got := files(t, p.dir); !slices.Contains(got, "app.log") || slices.ContainsFunc(got, func(f string) bool { return strings.HasSuffix(f, collector.RotatedSuffix) }) {
		t.Errorf("target files %v, want rotated files delivered under the live name", got)
	}
}

func TestFlushRotatedPartialLine(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.RotateSize = 1024
	cfg.FlushIdle = 200 * time.Millisecond
	c := mustCollector(t, cfg)
	body := lines("f", 0, 20, 100)
	appendFile(t, filepath.Join(src, "app.log"), body+"no newline")
	waitTargets(t, p.dir, map[string]string{"app.log": body + "no newline\n"})
	waitStats(t, c, func(st collector.Stats) error {
		if st.LinesFlushed != 1 || st.Rotations != 1 {
			return fmt.Errorf("Stats() flushed %d, rotations %d; want 1, 1", st.LinesFlushed, st.Rotations)
		}
		return nil
	})
	// Flushed, acknowledged, deleted.
	harness.WaitFor(t, waitTimeout, func() error {
		if f := files(t, src); len(f) > 0 {
			return fmt.Errorf("source dir still holds %v", f)
		}
		return nil
	})
	harness.WaitFor(t, waitTimeout, func() error { // counted just after the unlink
		if got := c.c.Stats().Deletions; got != 1 {
			return fmt.Errorf("Deletions = %d, want 1", got)
		}
		return nil
	})
}

func TestReconnectWhenProcessorAppears(t *testing.T) {
	// An address nobody listens on: the port of a closed listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	// Once the processor is up, dials go to it instead.
	var live atomic.Pointer[string]
	var dials atomic.Int64
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), dead)
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		if a := live.Load(); a != nil {
			addr = *a
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	appendFile(t, filepath.Join(src, "w.log"), "waiting\n")
	c := mustCollector(t, cfg)
	harness.WaitFor(t, waitTimeout, func() error {
		if n := dials.Load(); n < 3 {
			return fmt.Errorf("%d dials, want the collector to keep retrying", n)
		}
		return nil
	})
	if err := c.c.Healthy(); err == nil {
		t.Fatal("Healthy() = nil with no processor")
	}
	if st := c.c.Stats(); st.Connected || st.LastError == "" || st.Connects != 0 {
		t.Errorf("Stats() = %+v, want not connected, with the last error", st)
	}

	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pln.Addr().String()
	p := mustProcessorOn(t, t.TempDir(), pln)
	live.Store(&addr)
	waitTargets(t, p.dir, map[string]string{"w.log": "waiting\n"})
	harness.WaitFor(t, waitTimeout, func() error { return c.c.Healthy() })
	if st := c.c.Stats(); st.Connects != 1 || st.LastError != "" {
		t.Errorf("Stats() = %+v, want one connect, no error", st)
	}
}

func TestMaxOpenFiles(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	const n = 100
	want := make(map[string]string, n)
	for i := range n {
		name := fmt.Sprintf("d%d/f%03d.log", i%4, i)
		appendFile(t, filepath.Join(src, filepath.FromSlash(name)), name+"\n")
		want[name] = name + "\n"
	}
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.MaxOpenFiles = 16
	c := mustCollector(t, cfg)
	waitTargets(t, p.dir, want)
	harness.WaitFor(t, waitTimeout, func() error {
		if st := c.c.Stats(); st.OpenFiles > 16+2 || st.Streams != n {
			return fmt.Errorf("Stats() open files %d, streams %d; want ≤ 18, %d", st.OpenFiles, st.Streams, n)
		}
		return nil
	})
	// Files closed while idle are reopened when they grow.
	for i := range n {
		name := fmt.Sprintf("d%d/f%03d.log", i%4, i)
		if i%10 == 0 {
			appendFile(t, filepath.Join(src, filepath.FromSlash(name)), "more\n")
			want[name] += "more\n"
		}
	}
	waitTargets(t, p.dir, want)
}

func TestConfigValidate(t *testing.T) {
	good := collector.DefaultConfig()
	good.Name, good.SourceDir, good.OffsetsDB, good.Targets = "h", "/src", "/db", []string{"127.0.0.1:1"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	tests := []struct {
		name string
		mod  func(*collector.Config)
	}{
		{"no name", func(c *collector.Config) { c.Name = "" }},
		{"no source dir", func(c *collector.Config) { c.SourceDir = "" }},
		{"no offsets db", func(c *collector.Config) { c.OffsetsDB = "" }},
		{"no targets", func(c *collector.Config) { c.Targets = nil }},
		{"chunk too small", func(c *collector.Config) { c.ChunkBytes, c.MaxLineBytes = 4095, 100 }},
		{"chunk too large", func(c *collector.Config) { c.ChunkBytes = wire.MaxPayloadBytes }},
		{"max line zero", func(c *collector.Config) { c.MaxLineBytes = 0 }},
		{"max line over chunk", func(c *collector.Config) { c.MaxLineBytes = c.ChunkBytes + 1 }},
		{"max open files 15", func(c *collector.Config) { c.MaxOpenFiles = 15 }},
		{"one buffer", func(c *collector.Config) { c.Buffers = 1 }},
		{"window under a chunk", func(c *collector.Config) { c.WindowBytes = int64(c.ChunkBytes) - 1 }},
		{"unknown compression", func(c *collector.Config) { c.Compression = "gzip" }},
		{"zero rescan", func(c *collector.Config) { c.RescanInterval = 0 }},
		{"zero ping", func(c *collector.Config) { c.PingInterval = 0 }},
		{"zero flush idle", func(c *collector.Config) { c.FlushIdle = 0 }},
		{"zero backoff", func(c *collector.Config) { c.BackoffMin = 0 }},
		{"backoff max under min", func(c *collector.Config) { c.BackoffMax = c.BackoffMin - 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Errorf("Validate(%s) = nil, want an error", tt.name)
			}
		})
	}
	t.Run("limits accepted", func(t *testing.T) {
		cfg := good
		cfg.ChunkBytes, cfg.MaxLineBytes, cfg.WindowBytes = wire.MaxPayloadBytes-1, 1, wire.MaxPayloadBytes-1
		cfg.MaxOpenFiles, cfg.Buffers, cfg.Compression = 16, 2, wire.CompressionZstd
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(limits) = %v", err)
		}
	})
	t.Run("New reports every problem", func(t *testing.T) {
		_, err := collector.New(collector.Config{})
		if err == nil {
			t.Fatal("New(zero config) = nil error")
		}
		for _, s := range []string{"--name", "--source-dir", "--offsets-db", "--target-address"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("New(zero config) = %q, want it to mention %q", err, s)
			}
		}
	})
	t.Run("New refuses a missing source dir", func(t *testing.T) {
		cfg := good
		cfg.SourceDir = filepath.Join(t.TempDir(), "nope")
		cfg.OffsetsDB = filepath.Join(t.TempDir(), "offsets.db")
		if c, err := collector.New(cfg); err == nil {
			c.Close()
			t.Fatal("New(missing source dir) = nil error")
		}
	})
	t.Run("New refuses a file as source dir", func(t *testing.T) {
		cfg := good
		cfg.SourceDir = filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(cfg.SourceDir, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.OffsetsDB = filepath.Join(t.TempDir(), "offsets.db")
		if c, err := collector.New(cfg); err == nil {
			c.Close()
			t.Fatal("New(file as source dir) = nil error")
		}
	})
}

func TestMetrics(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	reg := prometheus.NewRegistry()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.Registerer = reg
	c := mustCollector(t, cfg)
	body := lines("m", 0, 50, 40)
	appendFile(t, filepath.Join(src, "m.log"), body)
	waitTargets(t, p.dir, map[string]string{"m.log": body})
	// Gauges are refreshed once a second.
	harness.WaitFor(t, waitTimeout, func() error {
		st := c.c.Stats()
		if st.AckedBytes != uint64(len(body)) || st.Streams != 1 || st.OpenFiles != 1 || st.LagBytes != 0 {
			return fmt.Errorf("Stats() = %+v, want all acknowledged, 1 stream", st)
		}
		return nil
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	var acks uint64
	var ackSum float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case mf.GetName() == "thunder_collector_ack_seconds":
				acks, ackSum = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	// Every frame sent was acknowledged, and timed.
	if acks == 0 || ackSum <= 0 || ackSum/float64(acks) > 10 {
		t.Errorf("thunder_collector_ack_seconds: %d frames timed, %v s in all; want every frame sent, each a plausible wait", acks, ackSum)
	}
	for name, want := range map[string]float64{
		"thunder_collector_bytes_sent_total":    float64(len(body)),
		"thunder_collector_lines_sent_total":    50,
		"thunder_collector_bytes_acked_total":   float64(len(body)),
		"thunder_collector_lag_bytes":           0,
		"thunder_collector_streams":             1,
		"thunder_collector_open_files":          1,
		"thunder_collector_connected":           1,
		"thunder_collector_connects_total":      1,
		"thunder_collector_rotations_total":     0,
		"thunder_collector_deletions_total":     0,
		"thunder_collector_lines_split_total":   0,
		"thunder_collector_lines_flushed_total": 0,
		"thunder_collector_stream_lag_bytes":    0,
	} {
		v, ok := got[name]
		if !ok {
			t.Errorf("%s not gathered", name)
			continue
		}
		if v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	// Registering a second collector on the same registry fails cleanly.
	cfg2 := cfg
	cfg2.SourceDir, cfg2.OffsetsDB = t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
	if c2, err := collector.New(cfg2); err == nil {
		c2.Close()
		t.Error("New with an already registered registry = nil error")
	}
}
