//go:build unix

package main

import (
	"fmt"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/wire"
)

// TestFakeResumesFromCommitted: a fake collector whose link broke while the
// processor held bytes appended but not committed takes Opened.committed,
// not Opened.offset, as what is acknowledged (PROTOCOL.md §4). Taking the
// offset, it would send it as Open.acked after a kill -9 of the processor,
// which then moves the stream forward past the bytes its restart cut: the
// storm bench lost them (3 Dec), and blamed the processor.
func TestFakeResumesFromCommitted(t *testing.T) {
	st := peer.NewStore()
	p := peer.Listen(t, 5*time.Second, func(n int, c *peer.Conn) {
		st.Serve(c, peer.Conduct{NoAck: n == 0}) // the first connection commits nothing
	})
	c, err := dialFake(p.Addr, fakeSpec{collector: "c1", streams: []fakeStreamSpec{{name: "a.log", writer: "w1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.pc.Close()
	s := c.streams[0]
	s.max = 3 * fakeFrameLines * lineBytes
	frame := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+fakeFrameLines*lineBytes)
	for s.sent < s.max {
		if _, _, err := c.sendRound(&frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := harness.Poll(t.Context(), 10*time.Second, func() error {
		if h, err := st.Only(); err != nil || h.End != uint64(s.sent) {
			return fmt.Errorf("the processor holds %+v (%v), %d sent", h.End, err, s.sent)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c.pc.Close() // the link breaks
	<-c.done
	if err := c.connect(); err != nil {
		t.Fatal(err)
	}
	if got := s.acked.Load(); got != 0 {
		t.Errorf("after the reconnect the fake holds %d bytes acknowledged; Opened committed none of the %d sent", got, s.sent)
	}
	if s.sent != s.max {
		t.Errorf("resumes at %d, the processor has %d", s.sent, s.max)
	}
	if n, _ := (fakeConns{c}).streamsAcked(); n != 0 {
		t.Errorf("%d streams counted acknowledged, none was", n)
	}
	if err := st.Bad(); err != nil {
		t.Error(err)
	}
}
