package collector_test

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// TestRunJoinsGoroutines checks that every goroutine a collector starts
// (the watcher, a dialler per target, each link's reader and writer) has
// exited when Run returns, not merely soon after: TestMain's leak check
// would not see one that lingers for a moment.
func TestRunJoinsGoroutines(t *testing.T) {
	p := mustProcessor(t)
	src := t.TempDir()
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), p.addr)
	cfg.Targets = append(cfg.Targets, "127.0.0.1:1") // a dialler that never connects
	c := mustCollector(t, cfg)
	appendFile(t, filepath.Join(src, "a.log"), "a1\n")
	waitTargets(t, p.dir, map[string]string{"a.log": "a1\n"})
	c.stop()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "thunder/internal/collector.(*Collector)") {
			t.Errorf("goroutine of the collector still running after Run returned:\n%s", g)
		}
	}
}

// TestRunClosesLinkNotTaken connects just as Run stops, so that the link is
// often handed over to a loop that no longer takes it. Run must close it
// and return at once, not hold on until its read deadline (three
// PingIntervals) passes.
func TestRunClosesLinkNotTaken(t *testing.T) {
	var peers sync.WaitGroup
	t.Cleanup(peers.Wait)
	for range 10 {
		dialing := make(chan struct{}, 1)
		cfg := baseConfig(t, t.TempDir(), filepath.Join(t.TempDir(), "offsets.db"), "fake:1")
		cfg.PingInterval = time.Minute
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			dialing <- struct{}{}
			<-ctx.Done() // connected as Run stops
			conn, peer := net.Pipe()
			peers.Go(func() { welcome(peer) })
			return conn, nil
		}
		c := mustCollector(t, cfg)
		<-dialing
		c.stop() // fails the test if Run does not return within waitTimeout
	}
}

// welcome plays a processor that takes the handshake and then reads
// whatever comes until conn is closed.
func welcome(conn net.Conn) {
	defer conn.Close()
	r := wire.NewReader(conn)
	defer r.Close()
	if r.ReadPreface() != nil {
		return
	}
	if f, err := r.Next(); err != nil || f.Type != wire.TypeHello {
		return
	}
	b, err := wire.AppendControl(nil, wire.TypeWelcome, &wirepb.Welcome{Version: wire.Version, MaxFrameBytes: wire.MaxFrameBytes, MaxStreams: 1000, Processor: "fake"})
	if err != nil {
		return
	}
	if _, err := conn.Write(b); err != nil {
		return
	}
	for {
		if _, err := r.Next(); err != nil {
			return
		}
	}
}
