package processor_test

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"thunder/internal/digest"
	"thunder/internal/harness/peer"
	"thunder/internal/identity"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// sealed is a collector that negotiated checksummed frames (§13): it
// seals what it sends, and its reader checks what it gets.
type sealed struct {
	t  *testing.T
	pc *peer.Conn
}

// dialSealed connects and shakes hands with the crc32c feature. The
// processor must run with identity checks off (a Proof would be sealed
// too, which peer does not do).
func dialSealed(t *testing.T, addr, name string) *sealed {
	t.Helper()
	pc, err := peer.Dial(addr, "", waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	pc.NoKey = true
	c := &sealed{t: t, pc: pc}
	if err := pc.SendHello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Features: []string{wire.FeatureCRC32C}}); err != nil {
		t.Fatal(err)
	}
	var w wirepb.Welcome
	if err := pc.Expect(wire.TypeWelcome, &w); err != nil {
		t.Fatal(err)
	}
	if len(w.Features) != 1 || w.Features[0] != wire.FeatureCRC32C {
		t.Fatalf("Welcome features = %q, want [crc32c]", w.Features)
	}
	pc.R.SetChecksums(true)
	return c
}

func (c *sealed) send(t wire.Type, m proto.Message) {
	c.t.Helper()
	b, err := wire.AppendControl(nil, t, m)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.pc.Write(wire.Seal(b, 0)); err != nil {
		c.t.Fatal(err)
	}
}

// dataFrame is a sealed data frame for [offset, offset+len(p)).
func sealedFrame(handle uint32, offset uint64, p string) []byte {
	b := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+len(p)+wire.ChecksumBytes)
	wire.PutDataHeader(b, wire.TypeData, handle, offset, offset+uint64(len(p)), len(p), true)
	sum := wire.DataSum(wire.TypeData, b[wire.HeaderBytes:], []byte(p), digest.Checksum([]byte(p)))
	return wire.AppendDataSum(append(b, p...), sum)
}

func (c *sealed) open(handle uint32, id []byte, name string, acked uint64, ackedDigest uint32) *wirepb.Opened {
	c.t.Helper()
	c.send(wire.TypeOpen, &wirepb.Open{Handle: handle, StreamId: id, Name: name, Acked: acked, AckedDigest: ackedDigest})
	var o wirepb.Opened
	if err := c.pc.Expect(wire.TypeOpened, &o); err != nil {
		c.t.Fatal(err)
	}
	return &o
}

// waitAck reads until the Ack of handle at offset, and returns its digest.
func (c *sealed) waitAck(handle uint32, offset uint64) uint32 {
	c.t.Helper()
	for {
		var a wirepb.Ack
		if err := c.pc.Expect(wire.TypeAck, &a); err != nil {
			c.t.Fatal(err)
		}
		for _, sa := range a.Streams {
			if sa.Handle == handle && sa.Offset == offset {
				return sa.Digest
			}
		}
	}
}

func crc(s string) uint32 { return digest.Checksum([]byte(s)) }

func noIdentity(c *processor.Config) { c.Identity = identity.ModeOff }

// TestChecksummedSession: with crc32c every frame is sealed both ways, and
// Opened and every Ack carry the stream's digest, the CRC-32C of what the
// target holds of it.
func TestChecksummedSession(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	id := newID(t)
	c := dialSealed(t, srv.addr, "host-a")
	if o := c.open(1, id, "a.log", 0, 0); o.Offset != 0 || o.Digest != 0 || o.CommittedDigest != 0 {
		t.Fatalf("Opened = %v, want all zero for a new stream", o)
	}
	p1, p2 := "one\ntwo\n", "three\n"
	c.pc.Write(sealedFrame(1, 0, p1))
	c.pc.Write(sealedFrame(1, 8, p2))
	if d := c.waitAck(1, 14); d != crc(p1+p2) {
		t.Fatalf("Ack digest = %08x, want %08x", d, crc(p1+p2))
	}
	c.send(wire.TypePing, nil)
	if err := c.pc.Expect(wire.TypePong, nil); err != nil {
		t.Fatalf("sealed Pong: %v", err)
	}
	_ = c.pc.Close()

	// On reconnection Opened says where, with which digest.
	c = dialSealed(t, srv.addr, "host-a")
	o := c.open(2, id, "a.log", 0, 0)
	if o.Offset != 14 || o.Digest != crc(p1+p2) || o.Committed != 14 || o.CommittedDigest != crc(p1+p2) {
		t.Fatalf("Opened on reconnect = %v, want offset and committed 14 with digest %08x", o, crc(p1+p2))
	}
	if got := readFile(t, srv.dir, "a.log"); got != p1+p2 {
		t.Fatalf("target = %q", got)
	}

	// A stream the collector delivered elsewhere starts from its digest.
	o = c.open(3, newID(t), "b.log", 100, 0xabcdef01)
	if o.Offset != 100 || o.Digest != 0xabcdef01 {
		t.Fatalf("Opened(acked 100) = %v, want the collector's digest", o)
	}
	c.pc.Write(sealedFrame(3, 100, "x\n"))
	if d := c.waitAck(3, 102); d != digest.Update(0xabcdef01, []byte("x\n")) {
		t.Fatalf("Ack digest after acked = %08x", d)
	}
}

// TestDamagedFrameRefused: a data frame changed on the way (one bit, in
// the payload or in its header) is refused with checksum, counted, and
// nothing of it is written; the collector's resend lands exactly once.
func TestDamagedFrameRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) { noIdentity(c); c.Registerer = reg })
	id := newID(t)
	good := "first line\n"
	c := dialSealed(t, srv.addr, "host-a")
	c.open(1, id, "a.log", 0, 0)
	c.pc.Write(sealedFrame(1, 0, good))
	c.waitAck(1, uint64(len(good)))

	p := "second line\nthird line\n"
	for i, bit := range []int{8 * (wire.DataPrefixBytes + 3), 8*(wire.HeaderBytes+19) + 2, 8*wire.DataPrefixBytes + 8*len(p) + 5} {
		c := dialSealed(t, srv.addr, "host-a")
		if o := c.open(1, id, "a.log", 0, 0); o.Offset != uint64(len(good)) {
			t.Fatalf("Opened = %v", o)
		}
		f := sealedFrame(1, uint64(len(good)), p)
		f[bit/8] ^= 1 << (bit % 8)
		c.pc.Write(f)
		if _, err := c.pc.ExpectError(wire.CodeChecksum); err != nil {
			t.Fatalf("flip %d: %v", i, err)
		}
		if got := metricValue(t, reg, "thunder_processor_checksum_errors_total"); got != float64(i+1) {
			t.Fatalf("checksum_errors_total = %v, want %d", got, i+1)
		}
	}
	c = dialSealed(t, srv.addr, "host-a")
	o := c.open(1, id, "a.log", 0, 0)
	c.pc.Write(sealedFrame(1, o.Offset, p))
	if d := c.waitAck(1, uint64(len(good+p))); d != crc(good+p) {
		t.Fatalf("digest = %08x, want %08x", d, crc(good+p))
	}
	if got := readFile(t, srv.dir, "a.log"); got != good+p {
		t.Fatalf("target = %q, want %q", got, good+p)
	}
}

// TestDamagedControlFrameRefused: an Open whose acked offset was changed on
// the way would make the processor skip bytes; its trailer catches it.
func TestDamagedControlFrameRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) { noIdentity(c); c.Registerer = reg })
	c := dialSealed(t, srv.addr, "host-a")
	b, _ := wire.AppendControl(nil, wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: "a.log", Acked: 0})
	b = wire.Seal(b, 0)
	b[len(b)-6] ^= 0x40
	c.pc.Write(b)
	if _, err := c.pc.ExpectError(wire.CodeChecksum); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "thunder_processor_checksum_errors_total"); got != 1 {
		t.Fatalf("checksum_errors_total = %v, want 1", got)
	}
}

// TestUnchecksummedCollector: a collector without the feature is served
// (counted, unsealed frames), unless checksums are required.
func TestUnchecksummedCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) { c.Registerer = reg })
	c := mustDial(t, srv.addr)
	if w := c.handshake("host-a"); len(w.Features) != 0 {
		t.Fatalf("Welcome features = %q for a collector without them", w.Features)
	}
	c.open(1, newID(t), "a.log", 0)
	c.waitAck(1, c.data(1, 0, "old\n"))
	if got := metricValue(t, reg, "thunder_processor_unchecksummed_connections_total"); got != 1 {
		t.Fatalf("unchecksummed_connections_total = %v, want 1", got)
	}

	strict := mustServe(t, "", func(c *processor.Config) { c.RequireChecksums = true })
	c = mustDial(t, strict.addr)
	c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-a"})
	e := c.expectError(wire.CodeVersion)
	if !bytes.Contains([]byte(e.Message), []byte("--require-checksums")) {
		t.Fatalf("refusal %q does not say what to change", e.Message)
	}
}
