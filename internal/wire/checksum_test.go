package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"thunder/internal/digest"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// sealedData builds a checksummed data frame of payload for [offset, end).
func sealedData(t wire.Type, handle uint32, offset, end uint64, payload, wirePayload []byte) []byte {
	b := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+len(wirePayload)+wire.ChecksumBytes)
	wire.PutDataHeader(b, t, handle, offset, end, len(wirePayload), true)
	sum := wire.DataSum(t, b[wire.HeaderBytes:], payload, digest.Checksum(payload))
	b = append(b, wirePayload...)
	return wire.AppendDataSum(b, sum)
}

func readSealed(t *testing.T, frame []byte) (wire.Frame, error) {
	t.Helper()
	r := wire.NewReader(bytes.NewReader(frame))
	r.SetChecksums(true)
	return r.Next()
}

func TestSealedControlRoundTrip(t *testing.T) {
	b, err := wire.AppendControl(nil, wire.TypeAck, &wirepb.Ack{Streams: []*wirepb.StreamAck{{Handle: 3, Offset: 77, Digest: proto.Uint32(0xdeadbeef)}}})
	if err != nil {
		t.Fatal(err)
	}
	b = wire.Seal(b, 0)
	f, err := readSealed(t, b)
	if err != nil {
		t.Fatalf("Next(sealed Ack) = %v", err)
	}
	var m wirepb.Ack
	if err := wire.Decode(f, &m); err != nil || m.Streams[0].GetDigest() != 0xdeadbeef || !f.Checksummed {
		t.Fatalf("Decode = %v %v, checksummed %v", &m, err, f.Checksummed)
	}
	// Every single bit flip past the length is caught: in the type, the
	// body or the trailer. (A flip in the length makes the frame another
	// size, which the trailer then does not match either, or truncates it.)
	for i := 4 * 8; i < len(b)*8; i++ {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if _, err := readSealed(t, c); err == nil {
			t.Fatalf("flip of bit %d accepted", i)
		}
	}
	// An empty body is sealed too (Ping).
	p := wire.Seal(append([]byte(nil), 0, 0, 0, 1, byte(wire.TypePing)), 0)
	if f, err := readSealed(t, p); err != nil || f.Type != wire.TypePing || len(f.Body) != 0 {
		t.Fatalf("sealed Ping = %v %q, %v", f.Type, f.Body, err)
	}
}

func TestSealedDataCatchesFlips(t *testing.T) {
	payload := []byte("one line\nanother line\n")
	b := sealedData(wire.TypeData, 7, 100, 123, payload, payload)
	check := func(frame []byte) error {
		f, err := readSealed(t, frame)
		if err != nil {
			return err
		}
		d, err := wire.ParseData(f.Body)
		if err != nil {
			return err
		}
		return wire.CheckData(f, d, digest.Checksum(d.Payload))
	}
	if err := check(b); err != nil {
		t.Fatalf("intact frame: %v", err)
	}
	for i := 4 * 8; i < len(b)*8; i++ {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		err := check(c)
		if err == nil {
			t.Fatalf("flip of bit %d (byte %d) accepted", i, i/8)
		}
	}
	// A flip in the offsets is a checksum error, not a frame at another place.
	c := bytes.Clone(b)
	c[wire.HeaderBytes+11] ^= 1
	if err := check(c); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("flip in offset: %v, want ErrChecksum", err)
	}
}

// A DataZstd trailer covers the payload as appended, not the compressed bytes.
func TestSealedZstdCoversDecompressed(t *testing.T) {
	payload := bytes.Repeat([]byte("compressible line of text\n"), 200)
	enc, dec := newCodecs(t)
	z := enc.Append(nil, payload)
	b := sealedData(wire.TypeDataZstd, 1, 0, uint64(len(payload)), payload, z)
	f, err := readSealed(t, b)
	if err != nil {
		t.Fatal(err)
	}
	d, err := wire.ParseData(f.Body)
	if err != nil {
		t.Fatal(err)
	}
	if d.Payload, err = dec.Decode(make([]byte, 0, wire.MaxPayloadBytes), d.Payload); err != nil {
		t.Fatal(err)
	}
	if err := wire.CheckData(f, d, digest.Checksum(d.Payload)); err != nil {
		t.Fatalf("CheckData(decompressed) = %v", err)
	}
	d.Payload = append(d.Payload[:len(d.Payload)-2:len(d.Payload)-2], 'X', '\n')
	if err := wire.CheckData(f, d, digest.Checksum(d.Payload)); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("CheckData(changed) = %v, want ErrChecksum", err)
	}
}

func TestSealedTooShort(t *testing.T) {
	b := []byte{0, 0, 0, 3, byte(wire.TypeOpen), 1, 2}
	if _, err := readSealed(t, b); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("3-byte body with trailers on: %v, want ErrChecksum", err)
	}
}

// FuzzSealed feeds arbitrary bytes to a reader that expects trailers (§13).
// It must never panic; a control frame it returns was checked, so sealing
// its body again gives back exactly the bytes read; a data frame passes
// CheckData only if its trailer matches what the test computes.
func FuzzSealed(f *testing.F) {
	ack, _ := wire.AppendControl(nil, wire.TypeAck, &wirepb.Ack{Streams: []*wirepb.StreamAck{{Handle: 1, Offset: 9, Digest: proto.Uint32(5)}}})
	f.Add(wire.Seal(ack, 0))
	f.Add(sealedData(wire.TypeData, 1, 0, 5, []byte("abcd\n"), []byte("abcd\n")))
	f.Add([]byte{0, 0, 0, 5, byte(wire.TypePing), 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := wire.NewReader(bytes.NewReader(in))
		r.SetChecksums(true)
		read := 0
		for range 64 {
			fr, err := r.Next()
			if err != nil {
				return
			}
			size := wire.HeaderBytes + len(fr.Body) + wire.ChecksumBytes
			raw := in[read : read+size]
			read += size
			if !fr.Checksummed {
				t.Fatalf("frame without its trailer")
			}
			if !fr.Type.IsData() {
				again := wire.Seal(append([]byte(nil), raw[:size-wire.ChecksumBytes]...), 0)
				again[3] = raw[3] // the length already counted the trailer
				again[0], again[1], again[2] = raw[0], raw[1], raw[2]
				if !bytes.Equal(again, raw) {
					t.Fatalf("checked %s frame %x does not seal to itself: %x", fr.Type, raw, again)
				}
				continue
			}
			d, err := wire.ParseData(fr.Body)
			if err != nil {
				continue
			}
			want := wire.DataSum(fr.Type, d.Header, d.Payload, digest.Checksum(d.Payload))
			if err := wire.CheckData(fr, d, digest.Checksum(d.Payload)); (err == nil) != (want == fr.Sum) {
				t.Fatalf("CheckData = %v with trailer %08x, content %08x", err, fr.Sum, want)
			}
		}
	})
}

func sealedHello(t *testing.T) []byte {
	t.Helper()
	b, err := wire.AppendControl(nil, wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "web-1", Features: []string{wire.FeatureCRC32C}})
	if err != nil {
		t.Fatal(err)
	}
	return wire.SealHello(b, 0)
}

func checkHello(b []byte) error {
	f, err := wire.NewReader(bytes.NewReader(b)).Next()
	if err != nil {
		return err
	}
	var h wirepb.Hello
	if err := wire.Decode(f, &h); err != nil {
		return err
	}
	return wire.CheckHello(f, &h)
}

// TestSealedHello: no single flipped bit in a Hello that offers crc32c
// yields a Hello accepted without the feature, or with other content: a
// damaged Hello must not turn checksums off.
func TestSealedHello(t *testing.T) {
	b := sealedHello(t)
	if err := checkHello(b); err != nil {
		t.Fatalf("intact Hello: %v", err)
	}
	for i := 4 * 8; i < len(b)*8; i++ {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if err := checkHello(c); err == nil {
			t.Fatalf("flip of bit %d (byte %d) accepted", i, i/8)
		}
	}
	// A Hello of a collector older than the feature has neither.
	old, _ := wire.AppendControl(nil, wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "web-1"})
	if err := checkHello(old); err != nil {
		t.Fatalf("old Hello: %v", err)
	}
}
