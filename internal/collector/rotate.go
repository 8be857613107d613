package collector

import (
	"errors"
	"os"
	"time"

	"thunder/internal/inuse"
)

// RotatedSuffix is inserted into a rotated file's name:
// app.log → app.log.20261124T115434.123456789Z.rotated.
const RotatedSuffix = ".rotated"

// deleteGrace is how long a rotated file is kept at least, so that a writer
// whose open(2) of the old name raced with the rename shows up in /proc.
const deleteGrace = time.Second

// noProcGrace replaces the /proc check where /proc cannot be read: rotated
// files are kept this long after the last time they grew.
const noProcGrace = 30 * time.Second

// maybeRotate renames a live file aside once it passed RotateSize. It keeps
// streaming under its original name; writers that open the name afresh
// create a new file, a new stream whose data follows the rotated one's.
func (c *Collector) maybeRotate(s *source, size int64) {
	if s.state != stateLive || c.held(s) || size <= 0 {
		return
	}
	bySize := c.cfg.RotateSize > 0 && size >= c.cfg.RotateSize
	byAge := c.cfg.RotateAge > 0 && time.Since(s.rec.Created) >= c.cfg.RotateAge
	if !bySize && !byAge {
		return
	}
	from := c.abs(s.rec.Path)
	to := from + "." + time.Now().UTC().Format("20060102T150405.000000000Z") + RotatedSuffix
	if err := os.Rename(from, to); err != nil {
		c.log.Warn("cannot rotate file", "path", s.rec.Path, "err", err)
		return
	}
	old := s.rec.Path
	if c.byPath[old] == s {
		delete(c.byPath, old)
	}
	s.rec.Path = c.rel(to)
	s.rec.Rotated = true
	s.rotatedAt, s.rotatedSize = time.Now(), size
	c.byPath[s.rec.Path] = s
	c.moveTo(s, stateRotated, "rotated")
	c.unsaved = append(c.unsaved, s)
	c.statsAdd(func(st *Stats) { st.Rotations++ })
	c.log.Info("file rotated", "path", old, "to", s.rec.Path, "bytes", size)
}

// maybeDelete removes a rotated file once (a) everything in it is
// acknowledged, its digest proven (provenForDelete), (b)
// flock(LOCK_EX|LOCK_NB) succeeds, (c) no other process has it open, and
// (d) a read after the unlink finds nothing new; if it does, the stream
// goes on through the open descriptor. A file whose digest a processor
// reported different from ours is never deleted (verify.go): it is the
// evidence. A file acknowledged by a processor that sends no digest (an
// old one) is deleted as before digests existed: refusing those would fill
// the disk of every collector feeding an old processor.
func (c *Collector) maybeDelete(s *source, now time.Time) {
	if s.state != stateRotated || s.inFlight() > 0 || now.Sub(s.rotatedAt) < deleteGrace || s.rec.Mismatch != nil {
		return
	}
	if _, ok := s.deliveredNow(); !ok || !c.provenForDelete(s) {
		return
	}
	ok, err := inuse.TryLockExclusive(s.f)
	if err != nil {
		c.log.Warn("cannot lock rotated file", "path", s.rec.Path, "err", err)
		return
	}
	if !ok {
		return // a writer holds LOCK_SH
	}
	path := c.abs(s.rec.Path)
	pids, err := c.openBy(path, false)
	switch {
	case errors.Is(err, inuse.ErrNoProcAccess):
		if !c.noProcLogged {
			c.noProcLogged = true
			c.log.Warn("cannot see which processes hold files open; rotated files are deleted after the flock check and a quiet period", "grace", noProcGrace, "err", err)
		}
		if now.Sub(s.seen.grown) < noProcGrace {
			_ = inuse.Unlock(s.f)
			return
		}
	case err != nil:
		_ = inuse.Unlock(s.f)
		return
	case len(pids) > 0:
		_ = inuse.Unlock(s.f) // an unlocked writer still holds it (held.go tells)
		return
	}
	if err := os.Remove(path); err != nil {
		_ = inuse.Unlock(s.f)
		c.log.Warn("cannot delete rotated file", "path", s.rec.Path, "err", err)
		return
	}
	c.statsAdd(func(st *Stats) { st.Deletions++ })
	if fi, err := s.f.Stat(); err == nil && !s.delivered(fi.Size()) {
		// Written between the checks and the unlink: finish it through f.
		c.log.Info("rotated file grew while deleted; finishing it", "path", s.rec.Path)
		c.lost(s, false)
		return
	}
	c.log.Info("rotated file deleted", "path", s.rec.Path, "name", s.rec.Name, "bytes", s.rec.Acked, "digest", digestState(s))
	c.end(s, "deleted")
}

// digestState says how the end of s was proven, for the deletion's log line.
func digestState(s *source) string {
	if !s.rec.HasDigest {
		return "unknown"
	}
	return hex32(s.rec.Digest)
}

// predDrained reports whether the file rotated away before s has nothing
// left to send, so s's data may follow it: a writer's lines written to the
// old file before the new one then reach the target first.
func (c *Collector) predDrained(s *source) bool {
	for range maxPredDepth {
		p := s.pred
		if p == nil {
			return true
		}
		if p.state == stateForgotten || p.f == nil {
			s.pred = p.pred // finished: its own predecessor still counts
			continue
		}
		if !c.drained(p) {
			return false
		}
		s = p // a writer may still append to a file rotated twice before
	}
	return true
}

// maxPredDepth bounds the chain of rotated files checked before a new one.
const maxPredDepth = 64

// drained reports whether p has nothing complete left to send, waking it if
// it has.
func (c *Collector) drained(p *source) bool {
	fi, err := p.f.Stat()
	if err != nil {
		return true
	}
	if uint64(fi.Size()) <= p.sent || p.eof && fi.Size() == p.seen.read {
		return true // nothing, or only an unterminated last line, is left
	}
	c.wake(p)
	return false
}
