package collector

import (
	"slices"
	"strings"
	"time"

	"thunder/internal/inuse"
)

// A writer that keeps its file open without a lock and never reopens it
// (Python's logging.FileHandler, many daemons) goes on writing into the file
// after the collector rotated it away. Nothing is lost: the rotated file is
// streamed and kept until the writer closes it. But it grows without end
// and the name never starts afresh, so the operator must be told: the
// status lists such files with their writers' pids, a metric counts them,
// and a warning is logged once per file.

// heldAfter is how long after its rotation a file held open counts as held
// by a writer that does not reopen: writers of the other contracts let go
// within deleteGrace, or at their next reopen (a second or so).
const heldAfter = 5 * time.Second

// heldCheckEvery spaces the /proc scans for the writers of a rotated file.
const heldCheckEvery = 2 * time.Second

// holders is what is known of the processes holding a rotated file.
type holders struct {
	pids    []int     // holding it open without a lock, at the last check; nil: none
	since   time.Time // when they were first seen
	checked time.Time // the last /proc scan
	warned  bool      // logged once for this file
}

// HeldFile is a rotated file that processes still hold open, and write,
// without a lock: they do not reopen their log after a rotation.
type HeldFile struct {
	Name  string    `json:"name"` // target name
	Path  string    `json:"path"` // where the rotated file is
	PIDs  []int     `json:"pids"` // the processes holding it
	Since time.Time `json:"since"`
	// BytesAfterRotation is what was written to it since its rotation by
	// this process (0 when it was rotated before the collector started).
	BytesAfterRotation int64 `json:"bytes_after_rotation"`
}

// checkHeld looks in /proc for processes that hold the rotated file s open
// for writing without a lock (a reader such as tail -f is none), heldAfter
// its rotation and then every heldCheckEvery. Run loop only.
func (c *Collector) checkHeld(s *source, now time.Time) {
	if s.state != stateRotated || s.f == nil || now.Sub(s.rotatedAt) < heldAfter || now.Sub(s.held.checked) < heldCheckEvery {
		return
	}
	s.held.checked = now
	if ok, err := inuse.TryLockExclusive(s.f); err != nil || !ok {
		return // a locked writer (LOCK_SH) lets go when it closes, as its contract says
	}
	_ = inuse.Unlock(s.f) // only probing
	pids, err := inuse.WritersOf(c.abs(s.rec.Path), false)
	if err != nil {
		return // without /proc, maybeDelete falls back on a grace period and says so
	}
	c.setHolders(s, pids, now)
}

// setHolders records the processes found writing the rotated file s
// without a lock, and warns once per file. Run loop only.
func (c *Collector) setHolders(s *source, pids []int, now time.Time) {
	// A writer that reopens at its next write (Python's WatchedFileHandler)
	// holds the file while idle, but writes nothing more to it.
	idle := s.rotatedSize > 0 && s.writtenAfterRotation() == 0
	if len(pids) == 0 || idle {
		s.held.pids = nil
		return
	}
	if s.held.pids == nil {
		s.held.since = now
	}
	s.held.pids = slices.Clone(pids)
	if s.held.warned {
		return
	}
	s.held.warned = true
	c.log.Warn("rotated file still written by a program that does not reopen its log",
		"path", s.rec.Path, "name", s.rec.Name, "pids", pids, "bytes_after_rotation", s.writtenAfterRotation(),
		"fix", "make the program reopen its log after rotation (its SIGHUP or SIGUSR1, or its own rotation setting), or rotate it a way it supports (logrotate copytruncate) with --rotate-size=0; until then the file is streamed, and kept until the program closes it")
}

// writtenAfterRotation is what was appended to the rotated file s since
// this process rotated it, as of the last stats tick (0: unknown).
func (s *source) writtenAfterRotation() int64 {
	if s.rotatedSize <= 0 {
		return 0
	}
	return max(0, s.seen.tick-s.rotatedSize)
}

// heldFiles lists up to MaxStatusStreams rotated files held by writers
// that do not reopen, by path. Run loop only.
func (c *Collector) heldFiles() []HeldFile {
	var list []HeldFile
	for _, s := range c.byID {
		if s.state != stateRotated || s.held.pids == nil {
			continue
		}
		list = append(list, HeldFile{Name: s.rec.Name, Path: s.rec.Path, PIDs: s.held.pids, Since: s.held.since, BytesAfterRotation: s.writtenAfterRotation()})
	}
	slices.SortFunc(list, func(a, b HeldFile) int { return strings.Compare(a.Path, b.Path) })
	return list[:min(len(list), MaxStatusStreams)]
}
