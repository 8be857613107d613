package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"thunder/internal/digest"
	"thunder/internal/wire/wirepb"
)

// FeatureCRC32C names checksummed frames in Hello and Welcome features
// (§13): once both sides agreed on it, every frame after Welcome, in either
// direction, ends with a CRC-32C trailer.
const FeatureCRC32C = "crc32c"

// ChecksumBytes is the size of a frame's trailer (§13).
const ChecksumBytes = 4

// ErrChecksum reports a frame whose trailer does not match its content:
// bytes changed on the way.
var ErrChecksum = errors.New("wire: checksum mismatch")

// frameSum is the CRC-32C of a frame's type and body (the trailer aside).
func frameSum(t Type, body []byte) uint32 {
	return digest.Update(digest.Checksum([]byte{byte(t)}), body)
}

// DataSum is the trailer of a data frame: the CRC-32C of its type, its
// data header and the payload as appended (decompressed, for DataZstd).
// payloadSum is the payload's own CRC-32C, which the stream's digest needs
// anyway, so a long payload is read once.
func DataSum(t Type, header, payload []byte, payloadSum uint32) uint32 {
	return digest.Extend(frameSum(t, header), payloadSum, payload)
}

// Seal appends the trailer to the frame that starts at dst[start:], a
// control frame as AppendControl left it, and counts it in the header.
func Seal(dst []byte, start int) []byte {
	f := dst[start:]
	n := binary.BigEndian.Uint32(f[:4])
	binary.BigEndian.PutUint32(f[:4], n+ChecksumBytes)
	return binary.BigEndian.AppendUint32(dst, frameSum(Type(f[4]), f[HeaderBytes:]))
}

// openTrailer splits a checksummed frame's body from its trailer. A control
// frame's trailer is checked here; a data frame's covers the payload as
// appended, so the receiver checks it (CheckData) once it has that.
func openTrailer(t Type, body []byte) ([]byte, uint32, error) {
	if len(body) < ChecksumBytes {
		return nil, 0, fmt.Errorf("%w: %s body of %d bytes has no trailer", ErrChecksum, t, len(body))
	}
	n := len(body) - ChecksumBytes
	body, sum := body[:n], binary.BigEndian.Uint32(body[n:])
	if !t.IsData() && frameSum(t, body) != sum {
		return nil, 0, fmt.Errorf("%w: %s frame of %d bytes", ErrChecksum, t, n)
	}
	return body, sum, nil
}

// CheckData checks a data frame's trailer against its payload as appended,
// whose own CRC-32C is payloadSum. Without checksums it accepts anything.
func CheckData(f Frame, d Data, payloadSum uint32) error {
	if !f.Checksummed {
		return nil
	}
	if got := DataSum(f.Type, d.Header, d.Payload, payloadSum); got != f.Sum {
		return fmt.Errorf("%w: %s frame for [%d, %d) of %d bytes: trailer %08x, content %08x", ErrChecksum, f.Type, d.Offset, d.End, len(d.Payload), f.Sum, got)
	}
	return nil
}

// helloSumTag is the key of Hello field 9 (hello_sum), wire type fixed32.
const helloSumTag = 9<<3 | 5

// SealHello appends hello_sum to the Hello frame that starts at dst[start:]
// (as AppendControl left it, with HelloSum unset): the CRC-32C of its type
// and body so far, encoded as the last field, counted in the header.
// Hello has no trailer, because a processor older than the feature would
// not read one, so this is how a damaged Hello is told from one without
// the feature (§13).
func SealHello(dst []byte, start int) []byte {
	f := dst[start:]
	sum := frameSum(TypeHello, f[HeaderBytes:])
	n := binary.BigEndian.Uint32(f[:4])
	binary.BigEndian.PutUint32(f[:4], n+5)
	dst = append(dst, helloSumTag)
	return binary.LittleEndian.AppendUint32(dst, sum)
}

// CheckHello checks a decoded Hello against the frame it came from: a Hello
// that offers crc32c must carry hello_sum as its last field, and that must
// be the CRC-32C of what precedes it. A Hello with neither is from a
// collector older than the feature.
func CheckHello(f Frame, h *wirepb.Hello) error {
	if h.HelloSum == nil {
		if slices.Contains(h.Features, FeatureCRC32C) {
			return fmt.Errorf("%w: hello offers %s without hello_sum", ErrChecksum, FeatureCRC32C)
		}
		return nil
	}
	b := f.Body
	n := len(b) - 5
	if n < 0 || b[n] != helloSumTag || binary.LittleEndian.Uint32(b[n+1:]) != *h.HelloSum {
		return fmt.Errorf("%w: hello_sum is not the hello's last field", ErrChecksum)
	}
	if got := frameSum(f.Type, b[:n]); got != *h.HelloSum {
		return fmt.Errorf("%w: hello of %d bytes: hello_sum %08x, content %08x", ErrChecksum, len(b), *h.HelloSum, got)
	}
	return nil
}
