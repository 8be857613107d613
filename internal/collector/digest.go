package collector

// A stream's digest D (PROTOCOL.md §13) is the CRC-32C of the payloads
// delivered so far, in offset order: D(0) = 0, and a Data frame [offset,
// end) with payload p gives D(end) = Update(D(offset), p). A payload is the
// source bytes [offset, end) with a newline added when the last of them is
// not one (a split long line, a flushed last line: §5), so D at an offset
// follows from the file and from where frames ended in the middle of a line.
//
// The collector knows D at the acknowledged offset (kept with it in the
// offsets DB) and at the end of every frame it sent in this process and that
// is not acknowledged yet (marks, kept across reconnections: after a cut,
// Opened may name a frame end sent on the dead connection). An offset above
// all it knows, which only an earlier collector process can have sent, is
// replayed from the file (replay). It compares the processor's digest at
// every Opened and Ack, wherever it knows its own.

import (
	"os"
	"sort"

	"thunder/internal/digest"
	"thunder/internal/tail"
)

// maxMarks bounds the digests a stream keeps for frames in flight. Past it,
// every other one is dropped (the newest is always kept, for the next frame
// to extend): an Ack at a dropped offset is not checked, later ones are.
const maxMarks = 4096

// mark is a stream's digest d at source offset off.
type mark struct {
	off uint64
	d   uint32
}

// digests is what a stream knows of its digest: at the acknowledged offset
// (when known), and at the ends of the frames sent above it, ascending.
// Owned by the Run loop.
type digests struct {
	acked mark
	known bool // acked.d is known
	marks []mark
}

// at returns D(off), if known.
func (ds *digests) at(off uint64) (uint32, bool) {
	if n := len(ds.marks); n > 0 && ds.marks[n-1].off == off {
		return ds.marks[n-1].d, true // the hot path: the next frame's start
	}
	if off == ds.acked.off {
		return ds.acked.d, ds.known
	}
	i := sort.Search(len(ds.marks), func(i int) bool { return ds.marks[i].off >= off })
	if i < len(ds.marks) && ds.marks[i].off == off {
		return ds.marks[i].d, true
	}
	return 0, false
}

// below returns the highest offset ≤ off where D is known.
func (ds *digests) below(off uint64) (mark, bool) {
	i := sort.Search(len(ds.marks), func(i int) bool { return ds.marks[i].off > off })
	if i > 0 {
		return ds.marks[i-1], true
	}
	return ds.acked, ds.known && ds.acked.off <= off
}

// sent records D(end) = d for a frame that starts at start. Marks above
// start are from an earlier send of the same bytes, which the processor
// does not hold (it resumed at start): this frame's end replaces them.
func (ds *digests) sent(start, end uint64, d uint32) {
	i := sort.Search(len(ds.marks), func(i int) bool { return ds.marks[i].off > start })
	ds.marks = append(ds.marks[:i], mark{end, d})
	if len(ds.marks) > maxMarks {
		k := 0
		for j := (len(ds.marks) - 1) % 2; j < len(ds.marks); j += 2 {
			ds.marks[k] = ds.marks[j]
			k++
		}
		ds.marks = ds.marks[:k] // the last one stays: the parity kept is len-1's
	}
}

// unknownFrom drops the marks above start: a frame from start was sent
// while D(start) is unknown, so nothing above it is known any more.
func (ds *digests) unknownFrom(start uint64) {
	i := sort.Search(len(ds.marks), func(i int) bool { return ds.marks[i].off > start })
	ds.marks = ds.marks[:i]
}

// learn records D(off) = d, found by a replay or taken from the processor,
// above the acknowledged offset, keeping the marks ascending.
func (ds *digests) learn(off uint64, d uint32) {
	if off == ds.acked.off {
		ds.acked.d, ds.known = d, true
		return
	}
	i := sort.Search(len(ds.marks), func(i int) bool { return ds.marks[i].off >= off })
	if i < len(ds.marks) && ds.marks[i].off == off {
		ds.marks[i].d = d
		return
	}
	ds.marks = append(ds.marks, mark{})
	copy(ds.marks[i+1:], ds.marks[i:])
	ds.marks[i] = mark{off, d}
}

// ack moves the acknowledged offset to off, with D(off) = d when known, and
// drops the marks at or below it.
func (ds *digests) ack(off uint64, d uint32, known bool) {
	ds.acked, ds.known = mark{off, d}, known
	i := sort.Search(len(ds.marks), func(i int) bool { return ds.marks[i].off > off })
	ds.marks = append(ds.marks[:0], ds.marks[i:]...)
	if len(ds.marks) == 0 {
		ds.marks = nil // let a long window's array go
	}
}

// replayTo returns D(to) for s, replayed from the highest offset below it
// where D is known (D(0) = 0 when nothing else is); false when it cannot
// (no descriptor, a read error, a file shorter than to, more than
// replayBytes to read).
func (c *Collector) replayTo(s *source, to uint64) (uint32, bool) {
	from, ok := s.dig.below(to)
	if !ok {
		from = mark{} // D(0) = 0
	}
	return c.replay(s, from, to, c.replayBytes())
}

// replayBytes bounds a replay at an Opened or an Ack, which runs on the Run
// loop: the range a previous process sent unacknowledged is at most about
// a window (plus the acknowledgements of its last second), so more means
// a record from an older collector, which has no digest at all; its digest
// is then taken from the processor and proven before the file is deleted.
func (c *Collector) replayBytes() uint64 { return 2 * uint64(c.cfg.WindowBytes) }

// maxReplayBytes bounds the replay of a rotated file before it is deleted
// when its digest was taken from a processor (provenForDelete): about
// --rotate-size normally, one file at a time.
const maxReplayBytes = 256 << 20

// openReplayBytes bounds the replay of a record from an older collector
// before its first Open (knowAckedDigest, c.openReplay): a restart may
// replay many such files at once on the Run loop.
const openReplayBytes = 64 << 20

// replay returns D(to) for s from D(from.off) = from.d, reading [from.off,
// to), at most limit bytes, from the file through tail.Read, with the line rules that made the
// payloads: a payload is the source bytes of its range, with a newline
// added when it ends inside a line. Frames end inside a line where tail.Read
// splits a long line (at the same places: with the --max-line-bytes the
// stream was read with, kept in the record, rec.MaxLine) and where a last line was flushed
// (rec.Flushes, kept in the offsets DB), and at to itself when it is inside
// a line. A record that could not keep every flush (past MaxFlushes,
// rec.FlushesLost) is not replayed: it would give another digest.
func (c *Collector) replay(s *source, from mark, to, limit uint64) (uint32, bool) {
	if to < from.off || to-from.off > limit || s.rec.FlushesLost {
		return 0, false
	}
	f := s.f
	if f == nil {
		// Not open for reading (idle, all delivered when last scanned):
		// the replay opens it by its path, if that is still its inode.
		if f = c.openForReplay(s); f == nil {
			return 0, false
		}
		defer f.Close() // read-only
	}
	if c.replayBuf == nil {
		c.replayBuf = make([]byte, c.cfg.ChunkBytes+2) // as the pool's buffers, for tail.Read
	}
	d, off := from.d, from.off
	for _, fl := range s.rec.Flushes {
		if fl > off && fl < to {
			var ok bool
			if d, ok = c.replaySegment(f, d, off, fl, c.maxLineOf(s)); !ok {
				return 0, false
			}
			off = fl
		}
	}
	return c.replaySegment(f, d, off, to, c.maxLineOf(s))
}

// openForReplay opens s's file read-only at its path, or returns nil if
// that is not s's inode (any more).
func (c *Collector) openForReplay(s *source) *os.File {
	f, err := os.OpenFile(c.abs(s.rec.Path), os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		return nil
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || statIno(fi) != (devIno{s.rec.Dev, s.rec.Ino}) {
		_ = f.Close()
		return nil
	}
	return f
}

// maxLineOf is the --max-line-bytes s's frames were read with: the one
// recorded (an earlier process's, until this one sends), else this one's.
func (c *Collector) maxLineOf(s *source) int {
	if s.rec.MaxLine > 0 {
		return s.rec.MaxLine
	}
	return c.cfg.MaxLineBytes
}

// replaySegment extends d over the payloads of [off, to), where no frame
// was flushed but perhaps at to.
func (c *Collector) replaySegment(f *os.File, d uint32, off, to uint64, maxLine int) (uint32, bool) {
	buf := c.replayBuf
	for off < to {
		payload, next, res, _, err := tail.Read(f, int64(off), buf, maxLine, false)
		if err != nil {
			return 0, false
		}
		if res != tail.Nothing && uint64(next) <= to {
			d, off = digest.Update(d, payload), uint64(next)
			continue
		}
		// The range ends inside what this read found, or in a line not
		// complete in the file: [off, to) is the last frame's, with a
		// newline added if it ends inside a line.
		if to-off > uint64(len(buf)) {
			return 0, false // more than one read: the file is shorter than to
		}
		piece := buf[:to-off]
		if n, _ := f.ReadAt(piece, int64(off)); n < len(piece) {
			return 0, false // shorter than to
		}
		d = digest.Update(d, piece)
		if piece[len(piece)-1] != '\n' {
			d = digest.Update(d, []byte{'\n'})
		}
		break
	}
	return d, true
}
