package collector

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"thunder/internal/offsets"
	"thunder/internal/stream"
	"thunder/internal/watch"
)

type devIno struct{ dev, ino uint64 }

// rescan walks the source dir and reconciles every source with it.
func (c *Collector) rescan() {
	seen := make(map[*source]bool, len(c.byID))
	err := watch.Walk(c.dir, func(path string, info fs.FileInfo) error {
		if s := c.scanPath(path, info); s != nil {
			seen[s] = true
		}
		return nil
	})
	if err != nil {
		c.log.Warn("source dir scan incomplete", "err", err)
	}
	for _, s := range c.byID {
		if !seen[s] {
			c.lost(s, true)
		}
	}
}

// onPath handles an event for one path.
func (c *Collector) onPath(path string) {
	info, err := os.Lstat(path)
	if err != nil {
		rel := c.rel(path)
		if s := c.byPath[rel]; s != nil {
			c.lost(s, false)
		}
		return
	}
	if info.IsDir() {
		_ = watch.Walk(path, func(p string, info fs.FileInfo) error {
			c.scanPath(p, info)
			return nil
		})
		return
	}
	c.scanPath(path, info)
}

func (c *Collector) rel(path string) string {
	r, err := filepath.Rel(c.dir, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}

// abs is the path of a file by its path relative to the source dir.
func (c *Collector) abs(rel string) string {
	return filepath.Join(c.dir, filepath.FromSlash(rel))
}

// scanPath finds or creates the source for a file. Cases:
//   - a known inode with the same leading bytes: the same stream, perhaps
//     renamed; follow the new path;
//   - a known inode whose leading bytes differ: the inode was reused; the old
//     stream is over, this is a new one;
//   - a known stream that shrank below what was sent: truncated in place;
//     the old stream is over, the file starts again as a new stream;
//   - another file now at a known stream's path: that stream was moved
//     away or deleted; it is finished through its open descriptor.
func (c *Collector) scanPath(path string, info fs.FileInfo) *source {
	if !info.Mode().IsRegular() {
		if !info.IsDir() && len(c.skipped) < maxSkippedLogged && !c.skipped[path] {
			c.skipped[path] = true
			c.log.Warn("not a regular file; not streamed", "path", c.rel(path), "mode", info.Mode().String())
		}
		return nil
	}
	key := statIno(info)
	if path == c.dbAbs || path == c.dbAbs+".lock" || key == c.dbIno {
		return nil // the offsets DB, whatever path leads to it
	}
	rel := c.rel(path)
	if s := c.byIno[key]; s != nil && c.sameStream(s, path, rel, info) {
		c.place(s, path, rel, info.Size())
		return s
	}
	if old := c.byPath[rel]; old != nil {
		c.lost(old, false)
	}
	if c.excluded(rel) {
		return nil
	}
	return c.newSource(path, rel, key)
}

// sameStream reports whether the file at path, which has s's inode, is
// still s's stream. If it is not (truncated, or the inode reused), s ends.
func (c *Collector) sameStream(s *source, path, rel string, info fs.FileInfo) bool {
	s.seen.checked = time.Now()
	// An unchanged size and mtime mean unchanged content: the rescan of an
	// idle directory reads no file.
	unchanged := info.Size() == s.seen.scanned && info.ModTime().Equal(s.seen.scanMtime)
	s.seen.scanned, s.seen.scanMtime = info.Size(), info.ModTime()
	switch {
	case uint64(info.Size()) < s.rec.Acked || uint64(info.Size()) < s.sent:
		c.log.Warn("file truncated; streaming it again from the start as a new stream", "path", rel, "name", s.rec.Name, "offset", s.rec.Acked, "size", info.Size())
		c.retire(s, "truncated")
		return false
	case !unchanged && !c.sameContent(s, path):
		c.retire(s, "inode reused")
		return false
	}
	return true
}

// place puts s, found at path (rel) and size bytes long, at that path: it
// is followed there, reopened if it changed while its descriptor was closed.
func (c *Collector) place(s *source, path, rel string, size int64) {
	why := "found at its path"
	if old := c.byPath[rel]; old != s {
		if old != nil {
			c.lost(old, false)
		}
		c.byPath[rel] = s
	}
	if s.rec.Path != rel {
		why = "found at another path"
		if c.byPath[s.rec.Path] == s {
			delete(c.byPath, s.rec.Path)
		}
		if strings.HasSuffix(rel, RotatedSuffix) && !strings.HasSuffix(s.rec.Path, RotatedSuffix) {
			// Our own rotation, whose record a crash kept from being saved:
			// it is a rotated file.
			s.rec.Rotated, s.rotatedAt = true, time.Now()
			why = "found rotated"
		}
		s.rec.Path = rel
		c.unsaved = append(c.unsaved, s)
	}
	if s.f == nil {
		restored := s.state == stateRestored
		if s.delivered(size) && !s.rec.Rotated {
			if restored {
				s.prior = uint64(size) // what an earlier process can have sent
			}
			c.moveTo(s, stateIdle, why+", all delivered") // left closed
			return
		}
		if !restored {
			c.moveTo(s, stateIdle, why) // closed while idle; reopened below
		}
		if c.openFile(s, path) != nil {
			return
		}
	}
	if s.rec.Rotated {
		c.moveTo(s, stateRotated, why)
	} else {
		c.moveTo(s, stateLive, why)
	}
	c.wake(s)
}

// sameContent reports whether the file at path starts with s's fingerprint.
func (c *Collector) sameContent(s *source, path string) bool {
	fp := s.rec.Fingerprint
	if len(fp) == 0 {
		return true
	}
	f := s.f
	if f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			return true // cannot tell; the next scan will
		}
		defer f.Close()
	}
	buf := make([]byte, len(fp))
	n, _ := f.ReadAt(buf, 0)
	return bytes.Equal(buf[:n], fp)
}

// leadingBytesSame reports whether s's open file still starts with its
// fingerprint: one pread of at most offsets.FingerprintBytes.
func (c *Collector) leadingBytesSame(s *source) bool {
	fp := s.rec.Fingerprint
	if len(fp) == 0 || s.f == nil {
		return true
	}
	buf := c.fpBuf[:len(fp)]
	n, _ := s.f.ReadAt(buf, 0)
	return bytes.Equal(buf[:n], fp)
}

func (c *Collector) newSource(path, rel string, key devIno) *source {
	s := &source{rec: offsets.Record{
		ID: stream.NewID(), Name: rel, Path: rel, Dev: key.dev, Ino: key.ino, Created: time.Now().UTC(),
		HasDigest: true, // D(0) = 0
	}}
	s.dig.ack(0, 0, true)
	if err := c.openFile(s, path); err != nil {
		return nil
	}
	c.moveTo(s, stateLive, "new file")
	// The fingerprint is what the file holds now, up to FingerprintBytes; it
	// grows as the file does (see extendFingerprint).
	c.extendFingerprint(s)
	c.byID[s.rec.ID] = s
	c.byPath[rel] = s
	c.byIno[key] = s
	c.follow(s)
	c.unsaved = append(c.unsaved, s)
	c.log.Info("new stream", "path", rel, "stream", s.rec.ID)
	return s
}

func (c *Collector) openFile(s *source, path string) error {
	// O_NONBLOCK and O_NOFOLLOW: a FIFO or a symlink swapped in after the
	// Lstat must not block the loop or lead out of the source dir.
	f, err := os.OpenFile(path, os.O_RDONLY|openNoFollow, 0)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ELOOP) {
			c.log.Warn("cannot open source file", "path", c.rel(path), "err", err)
		}
		return err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || statIno(fi) != (devIno{s.rec.Dev, s.rec.Ino}) && s.rec.Ino != 0 {
		_ = f.Close() // read-only; replaced between stat and open
		return fs.ErrNotExist
	}
	s.f = f
	c.openFiles++
	if s.state == stateRestored {
		// What an earlier process sent was in the file then; the file can
		// only have grown since (or it is another stream now).
		s.prior = uint64(fi.Size())
	}
	return nil
}

func (c *Collector) extendFingerprint(s *source) {
	if len(s.rec.Fingerprint) >= offsets.FingerprintBytes || s.f == nil {
		return
	}
	buf := make([]byte, offsets.FingerprintBytes)
	n, err := s.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return
	}
	if n > len(s.rec.Fingerprint) {
		s.rec.Fingerprint = buf[:n]
		if s.durable {
			c.unsaved = append(c.unsaved, s)
		}
	}
}

// lost handles a source whose path no longer leads to it (deleted, or moved
// away): it is read to the end through its descriptor.
//
// everywhere says a full scan did not find it. Until then a file that left
// its path may just have been renamed inside the source dir, and its create
// event or the next scan finds it by inode; it is only forgotten once it is
// fully acknowledged and either deleted (no links left) or not found by a
// scan. A source without a descriptor (closed while idle and delivered, or
// restored but nowhere to be found) has nothing left to read: a scan that
// does not find it forgets it.
func (c *Collector) lost(s *source, everywhere bool) {
	if c.byPath[s.rec.Path] == s {
		delete(c.byPath, s.rec.Path)
	}
	switch {
	case s.f == nil && everywhere:
		if s.state == stateRestored {
			c.log.Warn("file of an unfinished stream is gone", "name", s.rec.Name, "path", s.rec.Path, "offset", s.rec.Acked)
		}
		c.end(s, "not found by a scan")
		return
	case s.f == nil:
		if s.state == stateIdle {
			c.moveTo(s, stateLeft, "left its path while closed")
		}
		return
	case everywhere || s.state == stateOutside:
		c.moveTo(s, stateOutside, "not found by a scan")
	default:
		c.moveTo(s, stateLeft, "left its path")
	}
	c.wake(s)
}

// maxSkippedLogged bounds the non-regular files remembered as logged.
const maxSkippedLogged = 1000

// excluded reports whether a file not yet followed matches an Exclude
// pattern, by its relative path or its base name. A followed file that is
// renamed to an excluded name is still followed to its end.
func (c *Collector) excluded(rel string) bool {
	base := path.Base(rel)
	for _, p := range c.cfg.Exclude {
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}
