package peer_test

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"thunder/internal/digest"
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

// TestStoreSealed: a peer collector that offers crc32c to a fake processor
// that speaks it gets sealed frames both ways; the Store computes the
// stream's digest and reports it in Acks and in a later Opened, lies about
// it from LieFrom on, and refuses a data frame with a bad trailer with
// code checksum.
func TestStoreSealed(t *testing.T) {
	st := peer.NewStore()
	p := peer.ListenWith(t, peer.Options{WriteTimeout: 5 * time.Second, CRC32C: true}, func(n int, c *peer.Conn) {
		st.Serve(c, peer.Conduct{LieFrom: map[int]uint64{1: 1}[n]})
	})
	hello := &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "peer-a", Features: []string{wire.FeatureCRC32C}}
	dial := func() *peer.Conn {
		c, err := peer.Dial(p.Addr, "", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		w, err := c.Handshake(hello)
		if err != nil || !c.Sealed || len(w.Features) != 1 {
			t.Fatalf("Handshake = %v, %v, sealed %v; want crc32c negotiated", w, err, c.Sealed)
		}
		return c
	}
	id := peer.StreamID()
	c := dial()
	if _, err := c.Open(1, id, "a.log", 0); err != nil {
		t.Fatal(err)
	}
	payload := "one\ntwo\n"
	if _, err := c.Data(1, 0, payload); err != nil {
		t.Fatal(err)
	}
	var a wirepb.Ack
	if err := c.Expect(wire.TypeAck, &a); err != nil {
		t.Fatal(err)
	}
	want := digest.Checksum([]byte(payload))
	if len(a.Streams) != 1 || a.Streams[0].Offset != 8 || a.Streams[0].GetDigest() != want {
		t.Fatalf("Ack = %v, want offset 8 digest %08x", a.Streams, want)
	}
	// A damaged data frame is refused with checksum.
	b := c.DataFrameFor(1, 8, 12, []byte("bad\n"))
	b[wire.DataPrefixBytes] ^= 1
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExpectError(wire.CodeChecksum); err != nil {
		t.Fatal(err)
	}
	// The second connection lies from offset 1 on.
	c = dial()
	o, err := c.Open(1, id, "a.log", 8)
	if err != nil {
		t.Fatal(err)
	}
	if o.Offset != 8 || o.GetDigest() != want^1 {
		t.Errorf("Opened = %v, want offset 8 and a wrong digest (%08x)", o, want^1)
	}
	if st.Bad() == nil {
		t.Error("Store.Bad() = nil after a damaged frame")
	}
	if sealed, unsealed, _ := st.Frames(); sealed == 0 || unsealed != 0 {
		t.Errorf("Frames() = %d sealed, %d unsealed; want all sealed", sealed, unsealed)
	}
}
