package processor_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"thunder/internal/digest"
	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// dialSealedZ is dialSealed offering zstd too.
func dialSealedZ(t *testing.T, addr, name string) *sealed {
	t.Helper()
	pc, err := peer.Dial(addr, "", waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	pc.NoKey = true
	pc.ReadTimeout = waitTimeout
	c := &sealed{t: t, pc: pc}
	if err := pc.SendHello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Compression: []string{wire.CompressionZstd}, Features: []string{wire.FeatureCRC32C}}); err != nil {
		t.Fatal(err)
	}
	var w wirepb.Welcome
	if err := pc.Expect(wire.TypeWelcome, &w); err != nil {
		t.Fatal(err)
	}
	if len(w.Features) != 1 || w.Compression != wire.CompressionZstd {
		t.Fatalf("Welcome = %v", &w)
	}
	pc.R.SetChecksums(true)
	return c
}

func sealedControl(t *testing.T, typ wire.Type, m proto.Message) []byte {
	t.Helper()
	b, err := wire.AppendControl(nil, typ, m)
	if err != nil {
		t.Fatal(err)
	}
	return wire.Seal(b, 0)
}

// sealedZstdFrame is a sealed DataZstd frame for [offset, offset+len(p)).
func sealedZstdFrame(t *testing.T, handle uint32, offset uint64, p string) []byte {
	t.Helper()
	enc, err := wire.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	z := enc.Append(nil, []byte(p))
	b := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+len(z)+wire.ChecksumBytes)
	wire.PutDataHeader(b, wire.TypeDataZstd, handle, offset, offset+uint64(len(p)), len(z), true)
	sum := wire.DataSum(wire.TypeDataZstd, b[wire.HeaderBytes:], []byte(p), digest.Checksum([]byte(p)))
	return wire.AppendDataSum(append(b, z...), sum)
}

func targetState(t *testing.T, dir string) string {
	t.Helper()
	var s string
	for _, n := range []string{"a.log", "b.log"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		s += fmt.Sprintf("%s=%q;", n, b)
	}
	return s
}

// TestAttackEveryBitFlip (held; a passing guard): every single-bit flip
// of every byte of a sealed Data, DataZstd, Open, Close and Ping frame
// (length, type, data header, payload, zstd payload, protobuf body,
// trailer), sent on a connection with two open handles (1 and 3, one bit
// apart), ends that connection with an Error frame and changes nothing in
// the target, or (zstd only: bits zstd ignores, such as the frame header's
// unused bit) is accepted and writes exactly the intended lines, since the
// trailer covers the decompressed payload. The processor keeps serving.
// A flip that makes the length larger is followed by a half-close, so it
// ends as a truncated frame instead of waiting for the frame timeout.
func TestAttackEveryBitFlip(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	p := "second line\nthird line\n"
	frames := map[string]func(ida []byte) ([]byte, string){
		"data": func([]byte) ([]byte, string) { return sealedFrame(1, 0, p), p },
		"zstd": func([]byte) ([]byte, string) { return sealedZstdFrame(t, 1, 0, p+p+p+p), p + p + p + p },
		"open": func(ida []byte) ([]byte, string) {
			return sealedControl(t, wire.TypeOpen, &wirepb.Open{Handle: 5, StreamId: ida, Name: "a.log", Acked: 0}), ""
		},
		"close": func([]byte) ([]byte, string) {
			return sealedControl(t, wire.TypeClose, &wirepb.Close{Handle: 1, Done: true}), ""
		},
		"ping": func([]byte) ([]byte, string) { return sealedControl(t, wire.TypePing, nil), "" },
	}
	codes := map[string]map[wire.Code]int{}
	for kind, mk := range frames {
		codes[kind] = map[wire.Code]int{}
		f0, _ := mk(newID(t))
		for bit := range 8 * len(f0) {
			ida, idb := newID(t), newID(t)
			f, intended := mk(ida)
			before := targetState(t, srv.dir)
			c := dialSealedZ(t, srv.addr, "host-a")
			c.open(1, ida, "a.log", 0, 0)
			c.open(3, idb, "b.log", 0, 0)
			f[bit/8] ^= 1 << (bit % 8)
			c.pc.Write(f)
			_ = c.pc.Conn.(*net.TCPConn).CloseWrite()
			e, err := c.pc.ReadToClose()
			_ = c.pc.Close()
			if err != nil {
				t.Fatalf("%s frame, bit %d flipped: %v", kind, bit, err)
			}
			after := targetState(t, srv.dir)
			if e == nil {
				codes[kind][0]++
				if kind != "zstd" {
					t.Fatalf("%s frame, bit %d flipped: accepted without an Error", kind, bit)
				}
				// Accepted: it must have written exactly the intended lines.
				harness.WaitFor(t, waitTimeout, func() error {
					if got := readFile(t, srv.dir, "a.log"); got[len(got)-len(intended):] != intended {
						return fmt.Errorf("zstd bit %d accepted, a.log ends %q", bit, got[len(got)-len(intended):])
					}
					return nil
				})
				continue
			}
			codes[kind][wire.Code(e.Code)]++
			if after != before {
				t.Fatalf("%s frame, bit %d flipped (error %s %q): target changed", kind, bit, wire.Code(e.Code), e.Message)
			}
		}
	}
	t.Logf("outcomes per frame kind (code 0: accepted, output unchanged): %v", codes)
	c := dialSealedZ(t, srv.addr, "host-a")
	id := newID(t)
	c.open(1, id, "c.log", 0, 0)
	c.pc.Write(sealedFrame(1, 0, p))
	if d := c.waitAck(1, uint64(len(p))); d != crc(p) {
		t.Fatalf("digest = %08x, want %08x", d, crc(p))
	}
}

// TestAttackDamageReportedAsProtocol: §13 says a damaged data frame is
// refused with Error checksum, logged as damage and counted in
// thunder_processor_checksum_errors_total, and that a flip in a header
// field (offset, end, handle) "is caught". It is caught, but data()
// (streams.go) runs ParseData's offset/end rules, the handle lookup, zstd
// decoding and CheckLines before it looks at the trailer, so the same
// link damage is refused as `protocol` ("data for unknown stream handle",
// "payload does not end with a newline", "end not after offset", zstd
// errors), logged as a misbehaving collector and not counted as damage:
// of the single-bit flips of a sealed Data frame about 40 % (and of a
// DataZstd frame most) end as protocol (TestAttackEveryBitFlip logs the
// split). An operator watching checksum_errors_total for a bad link or
// NIC sees nothing, and a collector that treats checksum specially (it
// is the one code that says "resend, nothing is wrong with you") gets
// protocol instead.
//
// Fix: for a sealed Data frame, check the trailer right after the length
// check (len(body) ≥ 20), before any rule that can refuse; for DataZstd,
// report a decode failure (or a decoded payload failing CheckLines) on a
// sealed frame as checksum too, since a correct sender never produces
// one.
func TestAttackDamageReportedAsProtocol(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	p := "one line\n"
	for _, tc := range []struct {
		name string
		bit  int // in the frame
	}{
		{"handle 1 -> 3, not open", 8*(wire.HeaderBytes+3) + 1},
		{"last newline of the payload", 8*(wire.DataPrefixBytes+len(p)-1) + 1},
		{"offset > end", 8*(wire.HeaderBytes+4) + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialSealed(t, srv.addr, "host-a")
			c.open(1, newID(t), "a.log", 0, 0)
			f := sealedFrame(1, 0, p)
			f[tc.bit/8] ^= 1 << (tc.bit % 8)
			c.pc.Write(f)
			if e, err := c.pc.ExpectError(wire.CodeChecksum); err != nil {
				t.Errorf("damaged frame: %v (message %q)", err, e.GetMessage())
			}
		})
	}
}

// sealedRaw connects with crc32c, identity checks as the server has them,
// and returns the connection after Welcome (before any Proof).
func sealedRaw(t *testing.T, addr, name string, noKey bool) (*peer.Conn, *wirepb.Welcome) {
	t.Helper()
	pc, err := peer.Dial(addr, "", waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	pc.NoKey = noKey
	pc.ReadTimeout = waitTimeout
	if err := pc.SendHello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Features: []string{wire.FeatureCRC32C}}); err != nil {
		t.Fatal(err)
	}
	var w wirepb.Welcome
	if err := pc.Expect(wire.TypeWelcome, &w); err != nil {
		t.Fatal(err)
	}
	pc.R.SetChecksums(true)
	return pc, &w
}

// TestAttackSealingEdges (held; a passing guard) covers items 3 and 4 of
// the review: a collector that negotiated crc32c and then sends unsealed
// frames (Open, Ping, Proof), sealed bodies of 0–4 bytes, a data body of
// exactly MaxFrameBytes sealed (accepted) and unsealed (refused: its
// payload is 4 bytes over MaxPayloadBytes), one byte over, and a sealed
// data frame before the handshake completes. Each is refused with an
// Error, nothing is written, and every frame the processor sends after
// Welcome (Error included) carries a valid trailer (the peer's reader
// checks it).
func TestAttackSealingEdges(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	expect := func(pc *peer.Conn, codes ...wire.Code) {
		t.Helper()
		e, err := pc.ReadToClose()
		if err != nil || e == nil {
			t.Fatalf("want an Error %v then close; got %v, %v", codes, e, err)
		}
		for _, c := range codes {
			if wire.Code(e.Code) == c {
				return
			}
		}
		t.Fatalf("Error %s %q, want one of %v", wire.Code(e.Code), e.Message, codes)
	}
	unsealed := func(typ wire.Type, m proto.Message) []byte {
		b, err := wire.AppendControl(nil, typ, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("unsealed Open after crc32c", func(t *testing.T) {
		pc, _ := sealedRaw(t, srv.addr, "host-a", true)
		pc.Write(unsealed(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: "x.log"}))
		expect(pc, wire.CodeChecksum)
	})
	t.Run("unsealed Ping after crc32c", func(t *testing.T) {
		pc, _ := sealedRaw(t, srv.addr, "host-a", true)
		pc.Write(unsealed(wire.TypePing, nil))
		expect(pc, wire.CodeChecksum)
	})
	t.Run("unsealed Data after crc32c", func(t *testing.T) {
		c := dialSealed(t, srv.addr, "host-a")
		c.open(1, newID(t), "x.log", 0, 0)
		c.pc.Write(dataFrame(wire.TypeData, 1, 0, 5, []byte("abcd\n")))
		expect(c.pc, wire.CodeChecksum, wire.CodeProtocol)
	})
	for n := range 5 {
		for _, typ := range []wire.Type{wire.TypeData, wire.TypeDataZstd, wire.TypeOpen, wire.TypeClose, wire.TypePing} {
			t.Run(fmt.Sprintf("%s body of %d bytes", typ, n), func(t *testing.T) {
				c := dialSealed(t, srv.addr, "host-a")
				c.open(1, newID(t), "x.log", 0, 0)
				b := make([]byte, wire.HeaderBytes+n)
				wire.PutHeader(b, typ, n)
				if n == 4 { // a valid trailer over nothing
					b = b[:wire.HeaderBytes]
					wire.PutHeader(b, typ, 0)
					b = wire.Seal(b, 0)
				}
				c.pc.Write(b)
				if typ == wire.TypePing && n == 4 {
					if err := c.pc.Expect(wire.TypePong, nil); err != nil {
						t.Fatal(err)
					}
					return
				}
				_ = c.pc.Conn.(*net.TCPConn).CloseWrite()
				e, err := c.pc.ReadToClose()
				if err != nil {
					t.Fatal(err)
				}
				if typ == wire.TypeClose && n == 4 {
					// An empty Close is handle 0: ignored; the half-close ends it.
					if e != nil {
						t.Fatalf("empty sealed Close: Error %v", e)
					}
					return
				}
				if e == nil {
					t.Fatalf("no Error")
				}
			})
		}
	}
	t.Run("data body of exactly MaxFrameBytes", func(t *testing.T) {
		p := make([]byte, wire.MaxPayloadBytes)
		for i := range p {
			p[i] = 'a'
		}
		p[len(p)-1] = '\n'
		c := dialSealed(t, srv.addr, "host-a")
		c.open(1, newID(t), "big.log", 0, 0)
		f := sealedFrame(1, 0, string(p))
		if len(f)-wire.HeaderBytes != wire.MaxFrameBytes {
			t.Fatalf("body %d", len(f)-wire.HeaderBytes)
		}
		c.pc.Write(f)
		c.waitAck(1, uint64(len(p)))

		// One byte more: the header is refused before the body is read.
		c = dialSealed(t, srv.addr, "host-a")
		c.open(1, newID(t), "big2.log", 0, 0)
		g := sealedFrame(1, 0, string(p)+"\n")
		c.pc.Write(g[:wire.HeaderBytes])
		expect(c.pc, wire.CodeProtocol)

		// Unsealed, a body of MaxFrameBytes is a payload 4 bytes too long.
		u := mustDial(t, srv.addr)
		u.handshake("host-u")
		u.open(1, newID(t), "big3.log", 0)
		q := append(p[:len(p)-1:len(p)-1], "abc\n\n"...)
		u.write(dataFrame(wire.TypeData, 1, 0, uint64(len(q))-4, q))
		u.expectError(wire.CodeProtocol)
		if _, err := os.Stat(filepath.Join(srv.dir, "big3.log")); !os.IsNotExist(err) {
			t.Fatalf("big3.log: %v", err)
		}
	})
	t.Run("sealed data before Welcome", func(t *testing.T) {
		pc, err := peer.Dial(srv.addr, "", waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pc.NoKey = true
		pc.ReadTimeout = waitTimeout
		h, _ := pc.HelloBytes(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-a", Features: []string{wire.FeatureCRC32C}})
		pc.Write(append(h, sealedFrame(1, 0, "early\n")...))
		// Welcome, then the data frame is refused (no handle 1), sealed.
		var w wirepb.Welcome
		if err := pc.Expect(wire.TypeWelcome, &w); err != nil {
			t.Fatal(err)
		}
		pc.R.SetChecksums(true)
		expect(pc, wire.CodeProtocol)
	})
}

// TestAttackSealedProof (held): with identities on, the Proof is the
// first sealed frame; a sealed Proof completes the handshake, an unsealed
// one is refused with checksum (sealed), and a sealed Proof for a pinned
// name signed by another key is refused with auth.
func TestAttackSealedProof(t *testing.T) {
	srv := mustServe(t, "", nil)
	proof := func(pc *peer.Conn, w *wirepb.Welcome, key []byte, sealedIt bool) {
		t.Helper()
		b, err := wire.AppendControl(nil, wire.TypeProof, &wirepb.Proof{Signature: key})
		if err != nil {
			t.Fatal(err)
		}
		if sealedIt {
			b = wire.Seal(b, 0)
		}
		pc.Write(b)
	}
	pc, w := sealedRaw(t, srv.addr, "host-p", false)
	proof(pc, w, identity.Sign(peer.Key("host-p"), w.Challenge, nil, "host-p"), true)
	b := sealedControl(t, wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: "p.log"})
	pc.Write(b)
	if err := pc.Expect(wire.TypeOpened, nil); err != nil {
		t.Fatalf("after a sealed Proof: %v", err)
	}

	pc, w = sealedRaw(t, srv.addr, "host-p", false)
	proof(pc, w, identity.Sign(peer.Key("host-p"), w.Challenge, nil, "host-p"), false)
	if _, err := pc.ExpectError(wire.CodeChecksum); err != nil {
		t.Fatalf("unsealed Proof: %v", err)
	}

	pc, w = sealedRaw(t, srv.addr, "host-p", false)
	proof(pc, w, identity.Sign(peer.Key("other"), w.Challenge, nil, "host-p"), true)
	if _, err := pc.ExpectError(wire.CodeAuth); err != nil {
		t.Fatalf("Proof by another key: %v", err)
	}
}

// TestAttackUncheckedCollectorPoisonsDigest: a collector without the
// crc32c feature (an older release, served with a warning, §13) sends no
// Open.acked_digest: proto3 makes it 0. When it moves a stream forward
// (acked above what this processor holds: a failover, or state lost), the
// processor takes that 0 as D(acked) (target.Dir.Attach: s.at, s.done =
// acked, acked) and records it. Every digest of that stream from then on
// is CRC-32C continued from 0 at acked, not the §13 D(X). When the
// collector is upgraded, it opens with its real D and the processor
// answers (and acks, forever, and after restarts: it is in state.db)
// with the poisoned one: a permanent digest mismatch for that stream, so
// by §13 its source files are never deleted. A rolling upgrade that does
// processors first (the natural order: the feature is negotiated) hits
// this for every stream that fails over during the upgrade.
//
// Fix: on a connection without the feature, treat Open.acked_digest as
// unknown; record "digest unknown" with the mark, and take the first
// acked_digest a sealed Open brings at that stream's offset (or below, by
// extending it with what this processor holds).
func TestAttackUncheckedCollectorPoisonsDigest(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	id := newID(t)
	before := lines("delivered elsewhere", 10) // [0, 100ish): on another processor
	p := "here 1\n"
	old := mustDial(t, srv.addr)
	old.noKey = true
	old.handshake("host-a")
	if o := old.open(1, id, "a.log", uint64(len(before))); o.Offset != uint64(len(before)) {
		t.Fatalf("Opened = %v", o)
	}
	end := old.data(1, uint64(len(before)), p)
	old.waitAck(1, end)
	_ = old.pc.Close()

	// The collector, upgraded, knows D(end) of its file and says so.
	real := crc(before + p)
	c := dialSealed(t, srv.addr, "host-a")
	o := c.open(1, id, "a.log", end, real)
	if o.Offset != end || o.GetDigest() != real || o.GetCommittedDigest() != real {
		t.Errorf("Opened after the upgrade = offset %d digest %08x committed_digest %08x; the collector's D(%d) is %08x (the processor's is CRC-32C continued from 0 at %d: %08x)",
			o.Offset, o.GetDigest(), o.GetCommittedDigest(), end, real, len(before), digest.Update(0, []byte(p)))
	}
	q := "here 2\n"
	c.pc.Write(sealedFrame(1, end, q))
	if d := c.waitAck(1, end+uint64(len(q))); d != crc(before+p+q) {
		t.Errorf("Ack digest %08x, want D = %08x: the mismatch is permanent", d, crc(before+p+q))
	}
}

func lines(prefix string, n int) string {
	var s string
	for i := range n {
		s += fmt.Sprintf("%s %d\n", prefix, i)
	}
	return s
}

// TestAttackHelloFlipDowngrades: the negotiation itself is not covered by
// any checksum (Hello and Welcome never have a trailer, §13). One bit
// flipped on the way in Hello's features ("crc32c" -> "crc32b", or the
// field's tag byte) and the processor, by default (no
// --require-checksums), serves the connection without checksums: Welcome
// lists no feature, the collector (§13: "a collector whose processor does
// not list the feature ... sends frames without trailers and logs a
// warning") sends unsealed frames, and the next flipped bit in a payload
// is written into the target. So the link fault the feature exists for
// disables it first: "a byte changed on the way is detected ... never
// written" (DESIGN §2.7, README "Unaltered") does not hold for two flips.
//
// Fix: make the negotiation tamper-evident: the collector puts a CRC-32C
// of its Hello (a field, computed with that field zero) in it; a
// processor that knows crc32c refuses a Hello whose CRC is present and
// wrong, or present and without the feature it covers (a damaged Hello),
// with checksum; and Welcome carries a CRC of itself the collector checks
// when it offered crc32c. Older processors ignore the unknown field.
// Until then: a collector that offered crc32c to a processor that
// accepted it before should refuse to fall back silently.
func TestAttackHelloFlipDowngrades(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	pc, err := peer.Dial(srv.addr, "", waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.NoKey = true
	pc.ReadTimeout = waitTimeout
	h, err := pc.HelloBytes(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-a", Features: []string{wire.FeatureCRC32C}})
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(h), wire.FeatureCRC32C)
	h[i+len(wire.FeatureCRC32C)-1] ^= 0x01 // "crc32c" -> "crc32b": one bit on the link
	pc.Write(h)
	var w wirepb.Welcome
	if err := pc.Expect(wire.TypeWelcome, &w); err != nil {
		return // refused: fine
	}
	if len(w.Features) != 0 {
		t.Fatalf("Welcome features %q", w.Features)
	}
	// The collector sends unsealed, as §13 tells it to.
	if _, err := pc.Open(1, newID(t), "a.log", 0); err != nil {
		t.Fatal(err)
	}
	p := []byte("the amount is 100\n")
	f := dataFrame(wire.TypeData, 1, 0, uint64(len(p)), p)
	f[wire.DataPrefixBytes+14] ^= 0x08 // '1' -> '9': the second bit on the link
	pc.Write(f)
	harness.WaitFor(t, waitTimeout, func() error {
		if _, err := os.Stat(filepath.Join(srv.dir, "a.log")); err != nil {
			return err
		}
		return nil
	})
	if got := readFile(t, srv.dir, "a.log"); got != string(p) {
		t.Errorf("a damaged Hello turned checksums off and a damaged payload was written: target holds %q, the collector sent %q", got, p)
	}
}

// TestAttackHugeRefusalMessage: a refusal message embeds what the
// collector sent, unbounded: relpath.Clean quotes the whole name (%q), and
// a name may be as long as an Open body (64 KiB), four times that once
// quoted. The Error frame then exceeds MaxControlBytes, AppendControl
// refuses to encode it ("cannot encode frame"), and the collector gets no
// Error at all, just a closed connection (§7: it is owed one, with code
// name). The same quarter-megabyte message is logged ("collector
// refused"): at the log limit of 20 lines a second, one token holder
// makes the processor write about 5 MB/s of log. (Pre-existing; sealing
// adds 4 bytes to an already-full frame the same way.)
//
// Fix: bound what a message quotes (say, the first 256 bytes of a name,
// with its length), and have queueLocked truncate an Error's message to
// fit MaxControlBytes - ChecksumBytes instead of dropping the frame.
func TestAttackHugeRefusalMessage(t *testing.T) {
	srv := mustServe(t, "", noIdentity)
	c := dialSealed(t, srv.addr, "host-a")
	name := strings.Repeat("\x01", wire.MaxControlBytes-100)
	c.send(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: name})
	c.pc.ReadTimeout = waitTimeout
	e, err := c.pc.ReadToClose()
	if err != nil || e == nil || wire.Code(e.Code) != wire.CodeName {
		t.Errorf("Open with a %d-byte name: Error %v, %v; want an Error name", len(name), e, err)
	} else if len(e.Message) > 1024 {
		t.Errorf("refusal message of %d bytes", len(e.Message))
	}
}
