package processor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/harness"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

func TestStatusAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) { c.Registerer = reg })
	lines := map[string]int{"host-b": 7, "host-a": 3}
	var totalBytes, totalLines int
	bytesBy := map[string]int{}
	for _, name := range []string{"host-b", "host-a"} {
		c := mustDial(t, srv.addr)
		c.handshake(name)
		c.open(1, newID(t), name+".log", 0)
		c.open(2, newID(t), name+"-2.log", 0)
		var payload strings.Builder
		for i := range lines[name] {
			fmt.Fprintf(&payload, "%s line %d\n", name, i)
		}
		end := c.data(1, 0, payload.String())
		c.waitAck(1, end)
		bytesBy[name] = payload.Len()
		totalBytes += payload.Len()
		totalLines += lines[name]
	}
	// A connection still in its handshake is not listed.
	mustDial(t, srv.addr).write([]byte(wire.Preface))

	st := srv.p.Status()
	if st.Name != "test-processor" || st.TargetDir != srv.dir {
		t.Errorf("Status() name, dir = %q, %q; want %q, %q", st.Name, st.TargetDir, "test-processor", srv.dir)
	}
	if len(st.Collectors) != 2 {
		t.Fatalf("Status().Collectors = %+v, want 2 entries", st.Collectors)
	}
	for i, name := range []string{"host-a", "host-b"} { // sorted by name
		cs := st.Collectors[i]
		if cs.Name != name || cs.Streams != 2 {
			t.Errorf("Collectors[%d] = %+v, want name %s, 2 streams", i, cs, name)
		}
		if cs.Peer == "" || cs.Since.IsZero() {
			t.Errorf("Collectors[%d] = %+v, want peer and since set", i, cs)
		}
	}
	// Counted just after the append, so possibly after a commit acked it.
	harness.WaitFor(t, waitTimeout, func() error {
		st := srv.p.Status()
		if st.Totals.Lines != uint64(totalLines) || st.Totals.Bytes != uint64(totalBytes) {
			return fmt.Errorf("Status().Totals = %+v, want %d lines, %d bytes", st.Totals, totalLines, totalBytes)
		}
		for i, cs := range st.Collectors {
			if cs.Lines != uint64(lines[cs.Name]) || cs.Bytes != uint64(bytesBy[cs.Name]) {
				return fmt.Errorf("Collectors[%d] = %+v, want %d lines, %d bytes", i, cs, lines[cs.Name], bytesBy[cs.Name])
			}
		}
		for _, m := range []struct {
			name string
			want float64
		}{
			{"thunder_processor_lines_written_total", float64(totalLines)},
			{"thunder_processor_bytes_written_total", float64(totalBytes)},
		} {
			if got := metricValue(t, reg, m.name); got != m.want {
				return fmt.Errorf("%s = %v, want %v", m.name, got, m.want)
			}
		}
		return nil
	})
	if st.LastCommit.IsZero() || st.CommitErr != "" {
		t.Errorf("Status() last commit %v, error %q; want a successful commit", st.LastCommit, st.CommitErr)
	}
	if err := srv.p.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}

	for _, m := range []struct {
		name string
		want float64
	}{
		{"thunder_processor_connections_total", 2},
		{"thunder_processor_collectors_connected", 2},
	} {
		if got := metricValue(t, reg, m.name); got != m.want {
			t.Errorf("%s = %v, want %v", m.name, got, m.want)
		}
	}
	if got := metricValue(t, reg, "thunder_processor_commits_total"); got < 1 {
		t.Errorf("thunder_processor_commits_total = %v, want ≥ 1", got)
	}
}

func TestGracefulStopCommitsAndAcks(t *testing.T) {
	dir := t.TempDir()
	// No commit before the stop: only the final one can acknowledge.
	srv := mustServe(t, dir, func(c *processor.Config) { c.CommitInterval = time.Hour })
	id := newID(t)
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.open(1, id, "g.log", 0)
	end := c.data(1, 0, "before stop 1\nbefore stop 2\n")
	harness.WaitFor(t, waitTimeout, func() error {
		if got := srv.p.Status().Totals.Bytes; got != end {
			return fmt.Errorf("appended %d bytes, want %d", got, end)
		}
		return nil
	})
	srv.cancel()

	// PROTOCOL.md Open point 2: on stop the processor commits, sends its
	// last Acks and closes the connection.
	var acked uint64
	for {
		f, err := c.next()
		if errors.Is(err, io.EOF) || isReset(err) {
			break
		}
		if err != nil {
			t.Fatalf("reading after stop: %v", err)
		}
		if f.Type != wire.TypeAck {
			t.Fatalf("got %s frame after stop, want Ack or EOF", f.Type)
		}
		var a wirepb.Ack
		if err := wire.Decode(f, &a); err != nil {
			t.Fatal(err)
		}
		for _, sa := range a.Streams {
			if sa.Handle == 1 {
				acked = sa.Offset
			}
		}
	}
	srv.stop()
	if acked != end {
		t.Errorf("final Ack before close = %d, want %d", acked, end)
	}

	// The data is committed: a new processor on the same dir keeps it.
	if got, want := readFile(t, dir, "g.log"), "before stop 1\nbefore stop 2\n"; got != want {
		t.Fatalf("target after stop = %q, want %q", got, want)
	}
	srv2 := mustServe(t, dir, nil)
	c2 := mustDial(t, srv2.addr)
	c2.handshake("host-a")
	if o := c2.open(1, id, "g.log", 0); o.Offset != end || o.Committed != end {
		t.Fatalf("Opened after restart = (offset %d, committed %d), want (%d, %d)", o.Offset, o.Committed, end, end)
	}
	if got, want := readFile(t, dir, "g.log"), "before stop 1\nbefore stop 2\n"; got != want {
		t.Fatalf("target after restart = %q, want %q", got, want)
	}
}

// TestServeStopsPromptly stops a processor right after a collector
// connected, many times: Serve must not wait for the handshake or idle
// timeout of connections it accepted just before the stop.
func TestServeStopsPromptly(t *testing.T) {
	for i := range 20 {
		dir := t.TempDir()
		cfg := processor.DefaultConfig()
		cfg.TargetDir, cfg.Logger = dir, testLogger(t)
		cfg.HandshakeTimeout, cfg.IdleTimeout = time.Hour, time.Hour
		cfg.LingerTimeout = 50 * time.Millisecond // the clients never close
		p, err := processor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Serve(ctx, ln) }()
		c := mustDial(t, ln.Addr().String())
		c.handshake("host-a")
		silent := mustDial(t, ln.Addr().String())
		_ = silent
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			// Let it end for the cleanup, then report.
			_ = silent.conn.Close()
			_ = c.conn.Close()
			<-done
			p.Close()
			t.Fatalf("round %d: Serve still running 5s after cancel, with a connection in its handshake", i)
		}
		c.expectClosed()
		silent.expectClosed()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReopen(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) { c.Registerer = reg })
	c := mustDial(t, srv.addr)
	c.handshake("host-a")
	c.open(1, newID(t), "sub/r.log", 0)
	end := c.data(1, 0, "old\n")
	c.waitAck(1, end)

	live := filepath.Join(srv.dir, "sub", "r.log")
	if err := os.Rename(live, live+".1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.p.Reopen(); err != nil {
		t.Fatalf("Reopen() = %v", err)
	}
	end = c.data(1, end, "new\n")
	c.waitAck(1, end)
	if got := readFile(t, srv.dir, "sub/r.log"); got != "new\n" {
		t.Errorf("new target file = %q, want %q", got, "new\n")
	}
	if got := readFile(t, srv.dir, "sub/r.log.1"); got != "old\n" {
		t.Errorf("rotated target file = %q, want %q", got, "old\n")
	}
	if got := metricValue(t, reg, "thunder_processor_reopens_total"); got != 1 {
		t.Errorf("reopens_total = %v, want 1", got)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := processor.DefaultConfig()
	good.TargetDir = t.TempDir()
	tests := []struct {
		name string
		mod  func(*processor.Config)
	}{
		{"no target dir", func(c *processor.Config) { c.TargetDir = "" }},
		{"zero commit interval", func(c *processor.Config) { c.CommitInterval = 0 }},
		{"zero handshake timeout", func(c *processor.Config) { c.HandshakeTimeout = 0 }},
		{"negative idle timeout", func(c *processor.Config) { c.IdleTimeout = -1 }},
		{"zero write timeout", func(c *processor.Config) { c.WriteTimeout = 0 }},
		{"zero streams", func(c *processor.Config) { c.MaxStreamsPerConn = 0 }},
		{"zero conns", func(c *processor.Config) { c.MaxConns = 0 }},
		{"zero handshakes", func(c *processor.Config) { c.MaxHandshakes = 0 }},
		{"negative per peer", func(c *processor.Config) { c.MaxConnsPerPeer = -1 }},
		{"missing dir", func(c *processor.Config) { c.TargetDir = filepath.Join(good.TargetDir, "nope") }},
		{"unknown identity mode", func(c *processor.Config) { c.Identity = "trust-me" }},
		{"pin file in a missing dir", func(c *processor.Config) { c.KnownCollectors = filepath.Join(good.TargetDir, "nope", "pins") }},
		{"broken pin file", func(c *processor.Config) {
			c.KnownCollectors = filepath.Join(t.TempDir(), "pins")
			_ = os.WriteFile(c.KnownCollectors, []byte("not a pin\n"), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.Logger = testLogger(t)
			tt.mod(&cfg)
			p, err := processor.New(cfg)
			if err == nil {
				p.Close()
				t.Fatalf("New(%s) = nil error, want one", tt.name)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(defaults with a dir) = %v", err)
	}
}
