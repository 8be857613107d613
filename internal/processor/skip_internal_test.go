package processor

import (
	"testing"

	"thunder/internal/digest"
	"thunder/internal/stream"
)

// TestSkip: after a fault the collector resumes at the least offset of
// the outputs; an output that is ahead takes only what it lacks.
func TestSkip(t *testing.T) {
	d := stream.Chunk{Offset: 10, End: 22, Payload: []byte("aaa\nbbb\ncccc")}
	tests := []struct {
		name     string
		have, lo uint64
		from     uint64
		want     string
		ok       bool
	}{
		{"behind output takes all", 10, 10, 10, "aaa\nbbb\ncccc", true},
		{"ahead by one line", 14, 10, 14, "bbb\ncccc", true},
		{"ahead by all", 22, 10, 0, "", false},
		{"ahead beyond", 30, 10, 0, "", false},
		{"data not at the least offset goes to Append", 14, 12, 10, "aaa\nbbb\ncccc", true},
		{"data below the output goes to Append", 14, 14, 10, "aaa\nbbb\ncccc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := skip(tt.have, tt.lo, d)
			if c.Offset != tt.from || string(c.Payload) != tt.want || ok != tt.ok {
				t.Errorf("skip(%d, %d) = %d, %q, %v; want %d, %q, %v", tt.have, tt.lo, c.Offset, c.Payload, ok, tt.from, tt.want, tt.ok)
			}
			// A cut chunk carries its own checksum, for the digest.
			if ok && c.Offset != d.Offset && c.Sum != digest.Checksum(c.Payload) {
				t.Errorf("skip(%d, %d): sum %08x, want the CRC-32C of the rest", tt.have, tt.lo, c.Sum)
			}
		})
	}
	short := stream.Chunk{Offset: 10, End: 22, Payload: []byte("aa\n")}
	if _, ok := skip(20, 10, short); ok {
		t.Error("skip past a short payload: ok, want skipped")
	}
}
