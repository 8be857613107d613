package collector

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"thunder/internal/offsets"
)

// Checking the processor's digests (PROTOCOL.md §13). On a sealed link
// every Opened and every Ack carries the processor's digest of the stream
// at the offset it names; the collector compares it with its own wherever
// it knows its own (digest.go). A difference is a mismatch: the bytes the
// processor holds are not the bytes this collector read. It is loud and
// sticky: logged at error level once, counted, kept in the offsets DB (so a
// restart keeps reporting it), shown by the status and /healthz, and the
// file is never deleted by the collector. Delivery goes on: the processor
// holds what it holds, resending would not change it, and only an operator
// can tell which side is wrong.
//
// Where the collector does not know its own digest (a range an earlier
// process sent, a record from an older collector without digests), it
// replays the file (digest.go). Only where it cannot (more than two
// windows to read at once, a read error) it takes the processor's, logs
// that the range is proven by the frames' checksums only, and marks the
// record (Adopted): before such a file is deleted, a replay of the whole
// file must give the same digest.

// checkDigest compares theirs, l's processor's digest of s at off (what:
// where it said so), with the collector's own, when both know it (nil:
// the processor does not, §13).
func (c *Collector) checkDigest(l *link, s *source, what string, off uint64, theirs *uint32) {
	if ours, ok := s.dig.at(off); ok {
		c.compareDigest(l, s, what, off, ours, theirs)
	}
}

func (c *Collector) compareDigest(l *link, s *source, what string, off uint64, ours uint32, theirs *uint32) {
	if told(l, theirs) {
		c.compare(s, what, off, ours, *theirs, l.addr)
	}
}

// told reports whether l's processor gave a digest to go by: an old
// processor (an unsealed link) gives none, and a sealed one leaves it out
// where it does not know it.
func told(l *link, theirs *uint32) bool { return l.sealed && theirs != nil }

// compare records a mismatch of s at off when ours and theirs, addr's,
// differ; a mismatch is reported once.
func (c *Collector) compare(s *source, what string, off uint64, ours, theirs uint32, addr string) {
	if s.rec.Mismatch != nil || ours == theirs {
		return
	}
	s.rec.Mismatch = &offsets.Mismatch{Offset: off, Ours: ours, Theirs: theirs, Addr: addr, At: time.Now().UTC()}
	c.unsaved = append(c.unsaved, s)
	c.statsAdd(func(st *Stats) { st.DigestMismatches++ })
	c.log.Error("processor's digest of a file differs from this collector's: what it holds is not what was read; the file will not be deleted",
		"path", s.rec.Path, "name", s.rec.Name, "stream", s.rec.ID, "offset", off, "what", what,
		"digest", hex32(ours), "processor_digest", hex32(theirs), "addr", addr)
	c.publishMismatches()
}

// withheld records a mismatch of s at off where addr's processor left out
// a digest it owes; reported once, as compare's.
func (c *Collector) withheld(s *source, what string, off uint64, ours uint32, addr string) {
	if s.rec.Mismatch != nil {
		return
	}
	s.rec.Mismatch = &offsets.Mismatch{Offset: off, Ours: ours, Withheld: true, Addr: addr, At: time.Now().UTC()}
	c.unsaved = append(c.unsaved, s)
	c.statsAdd(func(st *Stats) { st.DigestMismatches++ })
	c.log.Error("processor acknowledged a file without the digest it gave when the stream opened: what it holds cannot be checked; the file will not be deleted",
		"path", s.rec.Path, "name", s.rec.Name, "stream", s.rec.ID, "offset", off, "what", what, "digest", hex32(ours), "addr", addr)
	c.publishMismatches()
}

// resumeDigest makes D(off) known where s resumes on l (Opened's offset),
// and checks the processor's digest there. An offset above all the
// collector knows was sent by an earlier process: it is replayed from the
// file; failing that, the processor's digest is taken.
func (c *Collector) resumeDigest(l *link, s *source, off uint64, theirs *uint32) {
	if ours, ok := s.dig.at(off); ok {
		c.compareDigest(l, s, "opened offset", off, ours, theirs)
		return
	}
	from, known := s.dig.below(off)
	if !known {
		from = mark{} // replayed from D(0) = 0
	}
	if ours, ok := c.replayTo(s, off); ok {
		c.log.Debug("digest replayed from the file", "path", s.rec.Path, "from", from.off, "to", off)
		c.learnDigest(s, off, ours, false)
		c.compareDigest(l, s, "opened offset", off, ours, theirs)
		return
	}
	if !told(l, theirs) {
		return // D unknown from here until a processor tells it
	}
	c.learnDigest(s, off, *theirs, true)
	c.log.Info("range proven by frame checksums only: it cannot be replayed from the file to check the processor's digest now; checked again before the file is deleted",
		"path", s.rec.Path, "name", s.rec.Name, "from", from.off, "to", off, "addr", l.addr)
}

// ackDigest checks the digest of an acknowledgement of s at off, above
// rec.Acked, and moves the known digest there. Run before rec.Acked moves.
func (c *Collector) ackDigest(l *link, s *source, off uint64, theirs *uint32, what string) {
	ours, ok := s.dig.at(off)
	if !ok {
		ours, ok = c.replayTo(s, off) // a mark dropped (maxMarks), or an Opened committed above all known
	}
	switch {
	case s.told && !told(l, theirs):
		// A processor's digest of an attached stream never goes from
		// known to unknown (PROTOCOL §13): one that gave it in Opened and
		// leaves it out now withholds it, and what it holds would never
		// be compared.
		c.withheld(s, what, off, ours, l.addr)
	case ok:
		c.compareDigest(l, s, what, off, ours, theirs)
	case told(l, theirs):
		ours, ok = *theirs, true
		s.rec.Adopted = true
		c.logAdopted(s, off, l)
	}
	s.dig.ack(off, ours, ok)
	s.rec.Digest, s.rec.HasDigest = ours, ok
}

// learnDigest records D(off) = d for s, learnt by a replay or, adopted,
// from the processor. A digest taken from a processor stays marked as such
// in the record (rec.Adopted) until a replay of the whole file proves it.
func (c *Collector) learnDigest(s *source, off uint64, d uint32, adopted bool) {
	s.dig.learn(off, d)
	s.rec.Adopted = s.rec.Adopted || adopted
	if off == s.rec.Acked {
		s.rec.Digest, s.rec.HasDigest = d, true
		c.markDirty(s)
	}
}

// knowAckedDigest replays s's file up to its acknowledged offset, which a
// record from an older collector has no digest for, before s is opened:
// Open carries the digest there, and a processor that does not hold the
// stream (a failover, a lost state) takes it as its own, so a guess would
// make every later digest differ. It reads up to c.openReplay bytes
// once per such record; past that the digest stays unknown (Open carries
// none) and the processor's is taken, marked (rec.Adopted) and proven
// before deletion.
func (c *Collector) knowAckedDigest(s *source) {
	if d, ok := c.replay(s, mark{}, s.rec.Acked, c.openReplay); ok {
		c.log.Debug("digest replayed from the file", "path", s.rec.Path, "from", 0, "to", s.rec.Acked)
		c.learnDigest(s, s.rec.Acked, d, false)
	}
}

// provenForDelete reports whether s, fully acknowledged, may be deleted as
// far as its digest goes: never after a mismatch; at once when its digest
// is the collector's own (compared with the processor's at every Ack, or
// from a processor that sends none); when it was taken from a processor,
// only once a replay of the whole file gives the same (a difference is a
// mismatch). A file too large to replay is deleted as before digests
// existed, and logged.
func (c *Collector) provenForDelete(s *source) bool {
	if s.rec.Mismatch != nil {
		return false
	}
	if !s.rec.Adopted || !s.rec.HasDigest {
		return true
	}
	d, ok := c.replay(s, mark{}, s.rec.Acked, maxReplayBytes)
	switch {
	case !ok && (s.rec.Acked > maxReplayBytes || s.rec.FlushesLost):
		if !s.replayLogged {
			s.replayLogged = true
			c.log.Info("rotated file cannot be replayed (too large, or more flushed last lines than its record keeps); its digest, taken from the processor, is proven by frame checksums only", "path", s.rec.Path, "bytes", s.rec.Acked)
		}
		return true
	case !ok:
		return false // a read error: the next tick tries again
	case d != s.rec.Digest:
		c.compare(s, "replay before delete", s.rec.Acked, d, s.rec.Digest, "(taken from a processor earlier)")
		return false
	}
	s.rec.Adopted = false
	c.unsaved = append(c.unsaved, s)
	c.log.Info("digest taken from the processor proven by a replay of the file", "path", s.rec.Path, "bytes", s.rec.Acked)
	return true
}

func (c *Collector) logAdopted(s *source, off uint64, l *link) {
	if s.adoptLogged {
		return
	}
	s.adoptLogged = true
	c.log.Info("stream digest not known here and not replayable from the file now; taking the processor's, proven by frame checksums only until the file is replayed before its deletion",
		"path", s.rec.Path, "name", s.rec.Name, "offset", off, "addr", l.addr)
}

// markDirty queues s's record for the next save of acknowledged offsets.
func (c *Collector) markDirty(s *source) {
	if !s.dirty {
		s.dirty = true
		c.ackDirty = append(c.ackDirty, s)
	}
}

// MismatchedFile is a file whose digest a processor reported different
// from the collector's own (PROTOCOL.md §13): the processor holds other
// bytes than the file's. The collector never deletes it.
type MismatchedFile struct {
	Name            string    `json:"name"` // target name
	Path            string    `json:"path"` // where the file is now
	ID              string    `json:"id"`
	Offset          uint64    `json:"offset"`           // where the digests differed first
	Digest          string    `json:"digest"`           // the collector's, hex
	ProcessorDigest string    `json:"processor_digest"` // the processor's, hex
	Addr            string    `json:"addr"`             // the processor
	Since           time.Time `json:"since"`
	// Gone: the stream ended since (its file was deleted or replaced by
	// someone else); reported until the collector restarts.
	Gone bool `json:"gone,omitempty"`
}

// maxGoneMismatches bounds the ended streams still reported.
const maxGoneMismatches = MaxStatusStreams

// publishMismatches recomputes the files in mismatch for Stats and Status.
// Run loop only; called when one is found or ends, not per tick.
func (c *Collector) publishMismatches() {
	var list []MismatchedFile
	for _, s := range c.byID {
		if s.rec.Mismatch != nil {
			list = append(list, mismatchedFile(s.rec, false))
		}
	}
	list = append(list, c.goneMismatches...)
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	c.statsMu.Lock()
	c.stats.MismatchFiles = len(list)
	c.mismatched = list[:min(len(list), MaxStatusStreams)]
	c.statsMu.Unlock()
}

func mismatchedFile(r offsets.Record, gone bool) MismatchedFile {
	m := r.Mismatch
	theirs := hex32(m.Theirs)
	if m.Withheld {
		theirs = "none"
	}
	return MismatchedFile{Name: r.Name, Path: r.Path, ID: r.ID.String(), Offset: m.Offset,
		Digest: hex32(m.Ours), ProcessorDigest: theirs, Addr: m.Addr, Since: m.At, Gone: gone}
}

// endMismatch keeps reporting a mismatched stream that ends.
func (c *Collector) endMismatch(s *source) {
	if s.rec.Mismatch == nil {
		return
	}
	if len(c.goneMismatches) < maxGoneMismatches {
		c.goneMismatches = append(c.goneMismatches, mismatchedFile(s.rec, true))
	}
	c.publishMismatches()
}

func hex32(v uint32) string { return fmt.Sprintf("%08x", v) }

// errMismatch is the health of a collector with files in mismatch.
type errMismatch struct{ files []MismatchedFile }

func (e errMismatch) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d file(s) whose processor's digest differs from the collector's (the processor holds other bytes; the files are kept):", len(e.files))
	for i, f := range e.files {
		if i == 5 {
			fmt.Fprintf(&b, " and %d more", len(e.files)-i)
			break
		}
		fmt.Fprintf(&b, " %s (as %s, at offset %d, processor %s)", f.Path, f.Name, f.Offset, f.Addr)
	}
	return b.String()
}
