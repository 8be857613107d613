package stream

import "thunder/internal/digest"

// Mark is a position in a stream: a source offset, and the stream's digest
// there, the CRC-32C of every payload byte delivered before it in offset
// order (PROTOCOL §13). Offset and digest always move together. Unknown
// says nobody can tell the digest (state older than digests, a collector
// without them): it stays unknown as the offset moves, until an Attach at
// that offset brings a known one.
type Mark struct {
	Offset  uint64
	Digest  uint32
	Unknown bool
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
	if m.Unknown {
		return Mark{Offset: c.End, Unknown: true}
	}
	return Mark{Offset: c.End, Digest: digest.Extend(m.Digest, c.Sum, c.Payload)}
}

// Resume returns where a stream at m continues when its collector
// attaches with acked: at acked if that is further (the bytes below were
// delivered elsewhere, and acked's digest is the collector's), with acked's
// digest if m's is unknown at the same offset, else at m. ok reports a
// change, which the output must record.
func (m Mark) Resume(acked Mark) (next Mark, ok bool) {
	switch {
	case acked.Offset > m.Offset:
		return acked, true
	case acked.Offset == m.Offset && m.Unknown && !acked.Unknown:
		return acked, true
	}
	return m, false
}

// DigestPtr is m's digest for a wire field, nil when unknown.
func (m Mark) DigestPtr() *uint32 {
	if m.Unknown {
		return nil
	}
	d := m.Digest
	return &d
}
