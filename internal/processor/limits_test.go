package processor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/processor"
)

// TestHandshakeSlotsNotStarvedByOnePeer: one peer holding every handshake
// slot with silent sockets must not lock out another peer's collector
// (issue 11). The new handshake takes the place of the hostile peer's
// oldest, which is closed; the hostile peer's own new connections are still
// refused.
func TestHandshakeSlotsNotStarvedByOnePeer(t *testing.T) {
	reg := prometheus.NewRegistry()
	const slots = 8
	srv := mustServe(t, "", func(c *processor.Config) {
		c.MaxHandshakes = slots
		c.HandshakeTimeout = time.Hour // the silent sockets never time out here
		c.Registerer = reg
	})
	hostile := make([]*client, slots)
	for i := range hostile {
		hostile[i] = mustDialFrom(t, srv.addr, "127.0.0.2")
	}
	// Accepted in order: once one more from the same peer is refused, all
	// slots are held.
	mustDialFrom(t, srv.addr, "127.0.0.2").expectClosed()

	honest := mustDialFrom(t, srv.addr, "127.0.0.1")
	honest.handshake("host-a")
	hostile[0].expectClosed() // the oldest gave its slot
	waitFor(t, waitTimeout, func() error {
		if got := metricValue(t, reg, "thunder_processor_handshakes_evicted_total"); got != 1 {
			return fmt.Errorf("handshakes_evicted_total = %v, want 1", got)
		}
		return nil
	})
	// The honest handshake is done: the hostile peer may take the free
	// slot, then holds the most again and its next connection is refused.
	// The others it holds stay.
	waitFor(t, waitTimeout, func() error { // released just after Welcome is queued
		if n := processor.Handshaking(srv.p); n != slots-1 {
			return fmt.Errorf("%d handshakes, want %d", n, slots-1)
		}
		return nil
	})
	hostile[0] = mustDialFrom(t, srv.addr, "127.0.0.2")
	mustDialFrom(t, srv.addr, "127.0.0.2").expectClosed()
	for _, c := range hostile {
		c.handshake("hostile")
	}
}
