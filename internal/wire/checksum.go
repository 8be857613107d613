package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"thunder/internal/digest"
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
