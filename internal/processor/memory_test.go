package processor_test

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"thunder/internal/harness/peer"
	"thunder/internal/identity"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// memConns is how many connections the memory test opens: enough that a
// per-connection figure stands out of the noise, few enough for a loaded
// 2-core box with -race.
const memConns = 2000

// TestMemoryPerConnection measures what a connection costs the processor
// in heap and goroutine stacks (PROTOCOL.md §6, Memory): idle, with three
// streams open and no frame in flight, and busy, with a ~1 KB data frame
// read and held by an output applying backpressure. A busy connection once
// pinned a 256 KiB pooled buffer for such a frame, and every connection a
// 32 KiB read buffer. The figures include the test's own client sockets.
func TestMemoryPerConnection(t *testing.T) {
	var attached, appending func() int64
	var release func()
	srv := mustServeWith(t, "", func(c *processor.Config) {
		c.Identity = identity.ModeOff // proofs cost time, not connection memory
		c.Logger = slog.New(slog.DiscardHandler)
		c.MaxHandshakes = memConns // this test is not about admission
	}, nil, func(p *processor.Processor) { attached, appending, release = processor.Stall(p) })
	t.Cleanup(release) // before the server stops
	base := memInUse()
	conns := make([]net.Conn, 0, memConns)
	for i := range memConns {
		conns = append(conns, dialStreams(t, srv.addr, i))
	}
	waitCount(t, attached, 3*memConns, "streams attached")
	idle := perConn(t, "idle", base)
	payload := []byte(strings.Repeat("x", 999) + "\n")
	frame := peer.SealedDataFrame(wire.TypeData, 1, 0, uint64(len(payload)), payload)
	for _, c := range conns {
		writeAll(t, c, frame)
	}
	waitCount(t, appending, memConns, "appends held")
	busy := perConn(t, "busy", base)
	if idle > maxIdleConnBytes || busy > maxBusyConnBytes {
		t.Errorf("per connection: idle %d bytes (want ≤ %d), busy %d bytes (want ≤ %d)", idle, maxIdleConnBytes, busy, maxBusyConnBytes)
	}
}

// The bounds asserted: generous against noise and -race, far below what
// one pinned 256 KiB or 32 KiB buffer costs.
const (
	maxIdleConnBytes = 32 << 10
	maxBusyConnBytes = 64 << 10
)

// dialStreams connects as collector i, without checksums' proof of
// identity, and opens three streams; it reads nothing (the kernel holds
// the answers).
func dialStreams(t *testing.T, addr string, i int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	name := fmt.Sprintf("mem-%d", i)
	b, err := wire.AppendControl([]byte(wire.Preface), wire.TypeHello, &wirepb.Hello{
		MinVersion: 1, MaxVersion: 1, Collector: name, Software: "test", Features: []string{wire.FeatureCRC32C},
	})
	if err != nil {
		t.Fatal(err)
	}
	b = wire.SealHello(b, len(wire.Preface))
	for h := range uint32(3) {
		start := len(b)
		if b, err = wire.AppendControl(b, wire.TypeOpen, &wirepb.Open{Handle: h + 1, StreamId: peer.StreamID(), Name: fmt.Sprintf("%s/%d.log", name, h)}); err != nil {
			t.Fatal(err)
		}
		b = wire.Seal(b, start)
	}
	writeAll(t, c, b)
	return c
}

func writeAll(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitCount waits until n() reaches want.
func waitCount(t *testing.T, n func() int64, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * waitTimeout)
	for n() < int64(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d within %v", what, n(), want, 3*waitTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling, not waiting for correctness
	}
}

// memUse is the memory in use after a full collection.
type memUse struct{ heap, stack uint64 }

func memInUse() memUse {
	runtime.GC()
	runtime.GC() // the second empties what sync.Pool kept as victims
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memUse{ms.HeapInuse, ms.StackInuse}
}

// perConn logs and returns the heap and stack memory in use past base, per
// connection.
func perConn(t *testing.T, what string, base memUse) uint64 {
	now := memInUse()
	per := func(now, base uint64) uint64 { return (max(now, base) - base) / memConns }
	heap, stack := per(now.heap, base.heap), per(now.stack, base.stack)
	t.Logf("%s: %d bytes per connection: heap %d, goroutine stacks %d (%d connections)", what, heap+stack, heap, stack, memConns)
	return heap + stack
}
