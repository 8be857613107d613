package wire

import (
	"encoding/binary"
	"fmt"
)

// Data is a decoded data frame (§5): lines of one stream.
//
// Offset is the source offset of the first byte and End the source offset
// after the last. Payload is usually source[Offset:End] but may differ: a line
// longer than the collector's maximum is cut into pieces that each end with a
// newline, and a partial last line flushed at idle gets a newline added. The
// processor writes Payload and resumes the stream at End.
type Data struct {
	Handle uint32
	Offset uint64
	End    uint64
	// Header and Payload alias the frame body; they are valid until the
	// next Reader.Next. Header is the data header, which the frame's
	// checksum covers (§13).
	Header  []byte
	Payload []byte
}

// ParseData decodes the body of a data frame and checks its invariants:
// End > Offset, a non-empty payload that ends with a newline.
func ParseData(body []byte) (Data, error) {
	if len(body) < DataHeaderBytes {
		return Data{}, fmt.Errorf("%w: body of %d bytes", ErrBadData, len(body))
	}
	d := Data{
		Handle:  binary.BigEndian.Uint32(body[0:4]),
		Offset:  binary.BigEndian.Uint64(body[4:12]),
		End:     binary.BigEndian.Uint64(body[12:20]),
		Header:  body[:DataHeaderBytes],
		Payload: body[DataHeaderBytes:],
	}
	switch {
	case d.End <= d.Offset:
		return Data{}, fmt.Errorf("%w: end %d not after offset %d", ErrBadData, d.End, d.Offset)
	case d.End-d.Offset > MaxPayloadBytes:
		return Data{}, fmt.Errorf("%w: covers %d source bytes, limit %d", ErrBadData, d.End-d.Offset, MaxPayloadBytes)
	case len(d.Payload) > MaxPayloadBytes:
		return Data{}, fmt.Errorf("%w: payload of %d bytes, limit %d", ErrBadData, len(d.Payload), MaxPayloadBytes)
	}
	return d, nil
}

// CheckLines verifies that p is a non-empty run of complete lines, as a
// decompressed payload must be.
func CheckLines(p []byte) error {
	if len(p) == 0 || p[len(p)-1] != '\n' {
		return fmt.Errorf("%w: payload does not end with a newline", ErrBadData)
	}
	return nil
}

// PutDataHeader writes the frame header and data header for a payload of
// payloadLen bytes into dst[:HeaderBytes+DataHeaderBytes]. Collectors read
// file bytes straight into the space after it. With sealed, the frame's
// length counts the trailer the caller appends after the payload
// (AppendDataSum, §13).
func PutDataHeader(dst []byte, t Type, handle uint32, offset, end uint64, payloadLen int, sealed bool) {
	n := DataHeaderBytes + payloadLen
	if sealed {
		n += ChecksumBytes
	}
	PutHeader(dst, t, n)
	b := dst[HeaderBytes:]
	binary.BigEndian.PutUint32(b[0:4], handle)
	binary.BigEndian.PutUint64(b[4:12], offset)
	binary.BigEndian.PutUint64(b[12:20], end)
}

// AppendDataSum appends a data frame's trailer, sum (DataSum).
func AppendDataSum(dst []byte, sum uint32) []byte { return binary.BigEndian.AppendUint32(dst, sum) }

// DataPrefixBytes is the room to leave in front of a payload for PutDataHeader.
const DataPrefixBytes = HeaderBytes + DataHeaderBytes
