package collector

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"thunder/internal/offsets"
	"thunder/internal/stream"
	"thunder/internal/watch"
)

type devIno struct{ dev, ino uint64 }

// source is one stream: a file being read. Owned by the Run loop.
type source struct {
	rec   offsets.Record
	saved bool // rec is durable; data may be sent
	f     *os.File

	on     *link  // the link s is open on; nil: none
	sent   uint64 // next offset to send on it
	handle uint32 // on it; 0: not open
	opened bool   // the processor answered Open
	moving bool   // a processor ranked higher is up: move once all is acked
	rank   []int  // Config.Targets indexes by preference (shard.Rank of the name)

	// What a processor can truthfully report (reportBound): hwm, the
	// highest offset sent on any link by this process; for a source
	// restored from the offsets DB, prior, its file's size when this
	// process first opened it, the most an earlier process can have sent.
	hwm      uint64
	restored bool // prior is still to be taken at the first open
	prior    uint64

	queued      bool // in c.ready
	gone        bool // no longer at a path in the source dir: finish through f
	flush       bool // send an unterminated last line with a newline
	eof         bool // the last read found no complete line
	dirty       bool // rec.Acked changed since the last save
	rotated     time.Time
	active      time.Time // last time data was sent
	idleClosed  bool      // f was closed to stay under MaxOpenFiles
	outside     bool      // gone, and a full scan did not find it in the source dir
	splitLogged bool
	pred        *source // the file rotated away from this one's path, streamed first
	grown       time.Time
	lastSize    int64
	size        int64     // as of the last stats tick
	changed     bool      // woken since the last stats tick
	checked     time.Time // identity last checked by scanPath
	seenSize    int64     // size and mtime at that check
	seenMtime   time.Time
}

func (c *Collector) closeFile(s *source) {
	if s.f != nil {
		_ = s.f.Close() // read-only
		s.f = nil
		c.openFiles--
	}
}

func statIno(fi fs.FileInfo) devIno {
	st := fi.Sys().(*syscall.Stat_t)
	return devIno{uint64(st.Dev), st.Ino}
}

// load restores the sources of the offsets DB. A record whose file cannot be
// found where it was is kept until the first scan; then it is dropped.
func (c *Collector) load() error {
	recs, err := c.db.Load()
	if err != nil {
		return err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Created.Before(recs[j].Created) })
	for _, r := range recs {
		s := &source{rec: r, saved: true, sent: r.Acked, restored: true}
		c.byID[r.ID] = s
		c.byIno[devIno{r.Dev, r.Ino}] = s
		c.follow(s)
	}
	return nil
}

// follow makes s, the newest source delivered as its name, wait for the
// one before it: all sources of one name are sent in the order they were
// first seen, so lines a writer wrote before a rotation or a rename reach the
// target before the lines it wrote after.
func (c *Collector) follow(s *source) {
	if p := c.lastByName[s.rec.Name]; p != nil && c.byID[p.rec.ID] == p {
		s.pred = p
	}
	c.lastByName[s.rec.Name] = s
}

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
	if s := c.byIno[key]; s != nil {
		s.checked = time.Now()
		// An unchanged size and mtime mean unchanged content: the rescan of
		// an idle directory reads no file.
		unchanged := info.Size() == s.seenSize && info.ModTime().Equal(s.seenMtime)
		s.seenSize, s.seenMtime = info.Size(), info.ModTime()
		switch {
		case uint64(info.Size()) < s.rec.Acked || uint64(info.Size()) < s.sent:
			c.log.Warn("file truncated; streaming it again from the start as a new stream", "path", rel, "name", s.rec.Name, "offset", s.rec.Acked, "size", info.Size())
			c.retire(s, "truncated")
		case !unchanged && !c.sameContent(s, path):
			c.retire(s, "inode reused")
		default:
			if s.rec.Path != rel || s.gone {
				if old := c.byPath[rel]; old != nil && old != s {
					c.lost(old, false)
				}
				delete(c.byPath, s.rec.Path)
				if strings.HasSuffix(rel, RotatedSuffix) && !strings.HasSuffix(s.rec.Path, RotatedSuffix) {
					// Our own rotation, whose record a crash kept from
					// being saved: it is a rotated file.
					s.rec.Rotated, s.rotated = true, time.Now()
				}
				s.rec.Path, s.gone, s.outside = rel, false, false
				c.byPath[rel] = s
				c.unsaved = append(c.unsaved, s)
			}
			if s.f == nil {
				if uint64(info.Size()) == s.rec.Acked && !s.rec.Rotated {
					return s // closed while idle, and still all delivered
				}
				if c.openFile(s, path) != nil {
					return s
				}
			}
			c.wake(s)
			return s
		}
	}
	if old := c.byPath[rel]; old != nil {
		c.lost(old, false)
	}
	if c.excluded(rel) {
		return nil
	}
	return c.newSource(path, rel, key)
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
	}}
	if err := c.openFile(s, path); err != nil {
		return nil
	}
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
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
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
	s.f, s.idleClosed = f, false
	c.openFiles++
	if s.restored {
		// What an earlier process sent was in the file then; the file can
		// only have grown since (or it is another stream now).
		s.restored, s.prior = false, uint64(fi.Size())
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
		if s.saved {
			c.unsaved = append(c.unsaved, s)
		}
	}
}

// lost marks a source whose path no longer leads to it (deleted, or moved
// out of the source dir): it is read to the end through its descriptor.
//
// everywhere says a full scan did not find it. Until then a file that left
// its path may just have been renamed inside the source dir, and its create
// event or the next scan finds it by inode; it is only forgotten once it is
// fully acknowledged and either deleted (no links left) or not found by a
// scan.
func (c *Collector) lost(s *source, everywhere bool) {
	if everywhere {
		s.outside = true
	}
	if !s.gone {
		s.gone = true
		if c.byPath[s.rec.Path] == s {
			delete(c.byPath, s.rec.Path)
		}
		c.log.Debug("file left its path; finishing it", "name", s.rec.Name, "path", s.rec.Path)
	}
	if s.f == nil {
		if !everywhere {
			return
		}
		// Closed while idle and delivered, or restored from the DB but
		// nowhere to be found: nothing left to read.
		if !s.idleClosed {
			c.log.Warn("file of an unfinished stream is gone", "name", s.rec.Name, "path", s.rec.Path, "offset", s.rec.Acked)
		}
		c.drop(s)
		return
	}
	c.wake(s)
}

// retire ends a stream whose file changed identity.
func (c *Collector) retire(s *source, why string) {
	c.log.Info("stream ended", "name", s.rec.Name, "stream", s.rec.ID, "why", why)
	c.drop(s)
}

// drop forgets a source: its record is deleted at the next save.
func (c *Collector) drop(s *source) {
	if s.on != nil {
		c.sendClose(s, true)
	}
	c.closeFile(s)
	delete(c.byID, s.rec.ID)
	if c.byPath[s.rec.Path] == s {
		delete(c.byPath, s.rec.Path)
	}
	if k := (devIno{s.rec.Dev, s.rec.Ino}); c.byIno[k] == s {
		delete(c.byIno, k)
	}
	if s.saved {
		c.forget = append(c.forget, s.rec.ID)
	}
	s.saved = false
	s.queued = false // removed lazily from c.ready
}

// wake queues s for reading.
func (c *Collector) wake(s *source) {
	s.eof, s.changed = false, true
	if !s.queued && !c.held(s) {
		s.queued = true
		c.ready = append(c.ready, s)
	}
}

// save persists new and changed records and deletions in one transaction.
func (c *Collector) save() {
	if len(c.unsaved) == 0 && len(c.forget) == 0 {
		return
	}
	recs := make([]offsets.Record, 0, len(c.unsaved))
	seen := make(map[*source]bool, len(c.unsaved))
	for _, s := range c.unsaved {
		if seen[s] || c.byID[s.rec.ID] != s {
			continue
		}
		seen[s] = true
		recs = append(recs, s.rec)
	}
	if err := c.db.Put(recs, c.forget); err != nil {
		c.log.Error("cannot save offsets; retrying", "err", err)
		return
	}
	for s := range seen {
		if !s.saved {
			s.saved = true
			c.wake(s)
		}
	}
	c.unsaved = c.unsaved[:0]
	c.forget = c.forget[:0]
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
