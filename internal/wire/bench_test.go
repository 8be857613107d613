package wire_test

import (
	"bytes"
	"io"
	"testing"

	"thunder/internal/wire"
)

// benchPayload returns 1 MiB of complete 100-byte lines.
func benchPayload() []byte {
	line := append(bytes.Repeat([]byte("x"), 99), '\n')
	return bytes.Repeat(line, (1<<20)/len(line))
}

// BenchmarkDecodeData reads data frames of 1 MiB of 100-byte lines and checks
// them as the processor does (Next, ParseData, CheckLines).
func BenchmarkDecodeData(b *testing.B) {
	payload := benchPayload()
	frame := make([]byte, wire.DataPrefixBytes+len(payload))
	copy(frame[wire.DataPrefixBytes:], payload)
	wire.PutDataHeader(frame, wire.TypeData, 1, 0, uint64(len(payload)), len(payload), false)
	r := wire.NewReader(&repeatReader{b: frame})
	defer r.Close()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		d, err := wire.ParseData(f.Body)
		if err != nil {
			b.Fatal(err)
		}
		if err := wire.CheckLines(d.Payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeData frames 1 MiB of 100-byte lines as the collector does:
// the payload is read into a buffer after DataPrefixBytes of room (modelled
// by a copy), PutDataHeader fills the room, and the frame is written.
func BenchmarkEncodeData(b *testing.B) {
	payload := benchPayload()
	buf := make([]byte, wire.DataPrefixBytes+len(payload))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var offset uint64
	for b.Loop() {
		n := copy(buf[wire.DataPrefixBytes:], payload)
		wire.PutDataHeader(buf, wire.TypeData, 1, offset, offset+uint64(n), n, false)
		if _, err := io.Discard.Write(buf[:wire.DataPrefixBytes+n]); err != nil {
			b.Fatal(err)
		}
		offset += uint64(n)
	}
}
