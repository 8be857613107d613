package stream

import "thunder/internal/digest"

// Mark is a position in a stream: a source offset, and the stream's digest
// there, the CRC-32C of every payload byte delivered before it in offset
// order (PROTOCOL §13). Offset and digest always move together.
type Mark struct {
	Offset uint64
	Digest uint32
}

// Chunk is one data frame's worth of a stream: the lines for source
// offsets [Offset, End), as appended (Payload), with the payload's CRC-32C
// and its number of lines, which the processor computed once.
type Chunk struct {
	Offset, End uint64
	Payload     []byte
	Sum         uint32
	Lines       int
}

// After returns the mark after c, which starts at m.
func (m Mark) After(c Chunk) Mark {
	return Mark{Offset: c.End, Digest: digest.Extend(m.Digest, c.Sum, c.Payload)}
}
