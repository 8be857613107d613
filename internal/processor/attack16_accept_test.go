package processor_test

import (
	"fmt"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/processor"
	"thunder/internal/wire/wirepb"
)

// TestDescriptorBudgetNotHeldByWaitingConnections: connections waiting
// for a handshake slot that fill the descriptor budget stopped accepting,
// so an honest collector sat in the backlog behind a hostile peer's next
// sockets, where the rules that let it take a waiting connection's place
// (as at --max-conns) and get the next slot (the peer holding the fewest)
// never saw it. Here peer A holds the slots, B's silent sockets wait for
// them and fill the budget, and 20 more peers have a socket each queued
// before the honest collector: it must get its slot at the first round of
// evictions (5 s), not after each of those got theirs (5 s per 4).
func TestDescriptorBudgetNotHeldByWaitingConnections(t *testing.T) {
	const slots, budget = 4, 6
	srv := mustServeWith(t, "", func(c *processor.Config) {
		c.MaxHandshakes = slots
		c.HandshakeTimeout = time.Minute
	}, nil, func(p *processor.Processor) { processor.SetConnBudget(p, budget) })
	for range slots {
		mustDialFrom(t, srv.addr, "127.0.0.2")
	}
	harness.WaitFor(t, waitTimeout, func() error {
		if n := processor.Handshaking(srv.p); n != slots {
			return fmt.Errorf("%d handshakes, want %d", n, slots)
		}
		return nil
	})
	for range budget - slots {
		mustDialFrom(t, srv.addr, "127.0.0.3")
	}
	harness.WaitFor(t, waitTimeout, func() error {
		if n := processor.Waiting(srv.p); n != budget-slots {
			return fmt.Errorf("%d waiting for a slot, want %d", n, budget-slots)
		}
		return nil
	})
	for i := range 20 { // each its own peer: none of them hogs the slots
		mustDialFrom(t, srv.addr, fmt.Sprintf("127.0.1.%d", 10+i))
	}
	honest, err := peer.Dial(srv.addr, "127.0.0.1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer honest.Close()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := honest.Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-a", Software: "test"})
		done <- err
	}()
	const within = 15 * time.Second // a round of evictions takes 5 s
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("honest handshake: %v", err)
		}
		t.Logf("honest collector in after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(within):
		t.Fatalf("honest collector not in within %v: kept in the backlog while the budget was full of waiting connections", within)
	}
}
