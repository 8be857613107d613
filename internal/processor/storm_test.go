package processor_test

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/harness/peer"
	"thunder/internal/processor"
	"thunder/internal/wire/wirepb"
)

// TestReconnectStormAllGetIn: after a processor restart every collector
// reconnects at once (issue 16: 30,801 connections refused by the
// handshake limit before 9,000 collectors were back). A burst of
// connections, each from its own address as a fleet's are, far larger
// than MaxHandshakes waits for handshake slots: every one completes its
// handshake (Hello, Welcome, Proof, then Open and Opened), none is
// refused or evicted.
func TestReconnectStormAllGetIn(t *testing.T) {
	const (
		storm = 2000
		slots = 64
	)
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) {
		c.MaxHandshakes = slots
		// What is tested is waiting instead of refusal: on a loaded box
		// (CI, -race) 2,000 handshakes through 64 slots took 13 s, past
		// the default 10 s a connection may wait, and 239 waits ran out.
		c.HandshakeTimeout = time.Minute
		c.Logger = slog.New(slog.DiscardHandler)
		c.Registerer = reg
	})
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr sync.Once
	start := time.Now()
	for i := range storm {
		wg.Go(func() {
			if err := stormCollector(srv.addr, i); err != nil {
				failed.Add(1)
				firstErr.Do(func() { t.Errorf("collector %d: %v", i, err) })
			}
		})
	}
	wg.Wait()
	t.Logf("%d collectors against %d handshake slots: all in after %v, %d failed, %v evicted", storm, slots,
		time.Since(start).Round(time.Millisecond), failed.Load(), metricValue(t, reg, "thunder_processor_handshakes_evicted_total"))
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d collectors of a reconnect storm did not get in", n, storm)
	}
}

// stormCollector connects as collector i from its own loopback address and
// opens a stream.
func stormCollector(addr string, i int) error {
	from := fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
	pc, err := peer.Dial(addr, from, 3*waitTimeout)
	if err != nil {
		return err
	}
	defer pc.Close()
	name := fmt.Sprintf("storm-%d", i)
	if _, err := pc.Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Software: "test"}); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if _, err := pc.Open(1, peer.StreamID(), name+".log", 0); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	return nil
}
