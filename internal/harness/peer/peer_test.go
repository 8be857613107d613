package peer_test

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"thunder/internal/harness/peer"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDialListen: a peer collector completes the handshake with a fake
// processor, which verified its proof, opens a stream, and reads the
// processor's Error as a *wire.RemoteError.
func TestDialListen(t *testing.T) {
	got := make(chan *wirepb.Open, 1)
	p := peer.Listen(t, 5*time.Second, func(n int, c *peer.Conn) {
		f, err := c.ServerNext()
		if err != nil || f.Type != wire.TypeOpen {
			t.Errorf("fake processor: got %v, %v; want Open", f.Type, err)
			return
		}
		var o wirepb.Open
		if err := wire.Decode(f, &o); err != nil {
			t.Error(err)
			return
		}
		got <- &o
		_ = c.Send(wire.TypeOpened, &wirepb.Opened{Handle: o.Handle, Offset: 7})
		_ = c.Send(wire.TypeError, &wirepb.Error{Code: uint32(wire.CodeBusy), Message: "go away"})
	})
	c, err := peer.Dial(p.Addr, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "peer-a"})
	if err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	if len(w.Challenge) == 0 {
		t.Error("Welcome without challenge")
	}
	id := peer.StreamID()
	o, err := c.Open(3, id, "a.log", 0)
	if err != nil || o.Offset != 7 {
		t.Fatalf("Open = %v, %v; want offset 7", o, err)
	}
	if o := <-got; o.Handle != 3 || o.Name != "a.log" || string(o.StreamId) != string(id) {
		t.Errorf("fake processor got Open %v", o)
	}
	var re *wire.RemoteError
	if err := c.Expect(wire.TypeAck, nil); !errors.As(err, &re) || re.Code != wire.CodeBusy {
		t.Errorf("Expect(Ack) = %v, want the busy error", err)
	}
	if err := c.ExpectClosed(); err != nil {
		t.Errorf("ExpectClosed: %v", err)
	}
}
