package collector_test

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/processor"
	"thunder/internal/wire"
)

// waitTimeout bounds every wait; generous for a loaded 2-core machine
// running with -race.
const waitTimeout = 30 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// proc is an in-process processor on 127.0.0.1:0.
type proc struct {
	p    *processor.Processor
	addr string
	dir  string
}

func mustProcessor(t *testing.T) *proc {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return mustProcessorOn(t, dir, ln)
}

func mustProcessorOn(t *testing.T, dir string, ln net.Listener) *proc {
	t.Helper()
	cfg := processor.DefaultConfig()
	cfg.Name, cfg.TargetDir = "test-processor", dir
	cfg.Logger = testLogger(t).With("side", "processor")
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor Serve = %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("processor Close = %v", err)
		}
	})
	return &proc{p: p, addr: ln.Addr().String(), dir: dir}
}

// col is a running collector.
type col struct {
	c    *collector.Collector
	stop func() // cancel Run, wait for nil, Close; idempotent
}

// baseConfig returns a collector config with quick reconnects.
func baseConfig(t *testing.T, src, db, addr string) collector.Config {
	cfg := collector.DefaultConfig()
	cfg.Name = "host-a"
	cfg.SourceDir, cfg.OffsetsDB, cfg.Targets = src, db, []string{addr}
	cfg.Logger = testLogger(t).With("side", "collector")
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 200*time.Millisecond
	return cfg
}

func mustCollector(t *testing.T, cfg collector.Config) *col {
	t.Helper()
	c, err := collector.New(cfg)
	if err != nil {
		t.Fatalf("collector.New: %v", err)
	}
	return mustRun(t, c)
}

// mustRun runs c until the test ends.
func mustRun(t *testing.T, c *collector.Collector) *col {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("collector Run = %v, want nil", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("collector Run still running %v after cancel", waitTimeout)
				return
			}
			if err := c.Close(); err != nil {
				t.Errorf("collector Close = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &col{c: c, stop: stop}
}

// appendFile appends s the way contract-1 writers do: open, write, close.
func appendFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// targetIs returns nil once dir/name holds exactly want.
func targetIs(dir, name, want string) error {
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	if string(b) != want {
		if len(b) > 200 || len(want) > 200 {
			return fmt.Errorf("target %s holds %d bytes, want %d", name, len(b), len(want))
		}
		return fmt.Errorf("target %s = %q, want %q", name, b, want)
	}
	return nil
}

// waitTargets waits until every target file has exactly its content.
func waitTargets(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	harness.WaitFor(t, waitTimeout, func() error {
		for name, content := range want {
			if err := targetIs(dir, name, content); err != nil {
				return err
			}
		}
		return nil
	})
}

// files lists the regular files under dir, relative, slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lines(prefix string, from, to, width int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		l := fmt.Sprintf("%s %08d ", prefix, i)
		b.WriteString(l)
		b.WriteString(strings.Repeat("x", max(0, width-len(l)-1)))
		b.WriteByte('\n')
	}
	return b.String()
}

// fake is a processor speaking the protocol by hand (peer.Listen), one
// handler per accepted connection.
type fake struct {
	*peer.Processor
	addr string
}

// fakeConn is one accepted, handshaken connection.
type fakeConn struct{ *peer.Conn }

func mustFake(t *testing.T, handle func(n int, fc *fakeConn)) *fake {
	t.Helper()
	p := peer.Listen(t, waitTimeout, func(n int, c *peer.Conn) { handle(n, &fakeConn{c}) })
	return &fake{Processor: p, addr: p.Addr}
}

func (fc *fakeConn) send(t wire.Type, m proto.Message) error { return fc.Send(t, m) }

// next reads the next frame; EOF and closed connections end the handler.
func (fc *fakeConn) next() (wire.Frame, error) { return fc.ServerNext() }

// waitStats polls c's Stats until f accepts them.
func waitStats(t *testing.T, c *col, f func(collector.Stats) error) {
	t.Helper()
	harness.WaitFor(t, waitTimeout, func() error { return f(c.c.Stats()) })
}
