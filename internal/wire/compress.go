package wire

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// CompressionZstd names zstd compression in Hello and Welcome (§3, §5).
const CompressionZstd = "zstd"

// ErrDecompress reports a DataZstd payload that does not decode to at most
// MaxPayloadBytes.
var ErrDecompress = errors.New("wire: bad compressed payload")

// Encoder compresses data payloads. It is not safe for concurrent use.
type Encoder struct{ enc *zstd.Encoder }

// NewEncoder returns a zstd encoder tuned for speed: log lines compress well
// even at the fastest level, and the collector must stay cheap.
func NewEncoder() (*Encoder, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd encoder: %w", err)
	}
	return &Encoder{enc: enc}, nil
}

// Append appends the compressed form of src to dst.
func (e *Encoder) Append(dst, src []byte) []byte { return e.enc.EncodeAll(src, dst) }

// Decoder decompresses data payloads. It is safe for concurrent use.
type Decoder struct{ dec *zstd.Decoder }

// NewDecoder returns a decoder that refuses to produce more than
// MaxPayloadBytes, whatever a hostile frame claims.
func NewDecoder() (*Decoder, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxPayloadBytes))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd decoder: %w", err)
	}
	return &Decoder{dec: dec}, nil
}

// DecodedBytes returns the size src says it decompresses to (its zstd frame
// header's content size, which Encoder always writes), or MaxPayloadBytes
// when it does not say or says more: a buffer of that capacity for Decode.
// Decode refuses a payload that decompresses to more than its capacity.
func (d *Decoder) DecodedBytes(src []byte) int {
	var h zstd.Header
	if h.Decode(src) != nil || !h.HasFCS || h.FrameContentSize > MaxPayloadBytes {
		return MaxPayloadBytes
	}
	return int(h.FrameContentSize)
}

// Decode decompresses src into dst[:0], whose capacity bounds the output:
// at most MaxPayloadBytes, and DecodedBytes(src) for an honest payload.
func (d *Decoder) Decode(dst, src []byte) ([]byte, error) {
	out, err := d.dec.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecompress, err)
	}
	return out, nil
}

// Close releases the decoder's goroutines.
func (d *Decoder) Close() { d.dec.Close() }
