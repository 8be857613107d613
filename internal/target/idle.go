package target

import (
	"os"
	"sort"
	"time"
)

// CloseIdle closes the descriptors of the files appended to least recently
// and with nothing uncommitted, once more than max are open, down to 90% of
// max. The next append to such a file opens its name again. It returns how
// many it closed.
//
// It waits for no lock a writer may hold long: a file whose lock is taken
// (an append, an open recording its file) is passed over, and the commit
// lock is not taken (a file a commit is syncing is marked so, and kept), so
// neither commits nor appends stop while it runs.
func (d *Dir) CloseIdle(max int) int {
	if int(d.openFDs.Load()) <= max {
		return 0
	}
	type candidate struct {
		f     *file
		dirty bool
		last  time.Time
	}
	var idle []candidate
	for _, f := range d.allFiles() {
		if !f.mu.TryLock() {
			continue
		}
		if f.idle() || d.closableDirty(f) {
			idle = append(idle, candidate{f, f.dirty, f.last})
		}
		f.mu.Unlock()
	}
	// Files with everything committed first, then the written ones the
	// commit syncs without a descriptor (behind.go); each, least recently
	// written first.
	sort.Slice(idle, func(i, j int) bool {
		if idle[i].dirty != idle[j].dirty {
			return !idle[i].dirty
		}
		return idle[i].last.Before(idle[j].last)
	})
	closed := 0
	for _, c := range idle {
		if int(d.openFDs.Load()) <= max*9/10 {
			break
		}
		f := c.f
		if !f.mu.TryLock() {
			continue
		}
		switch {
		case f.idle():
			d.idleCloseLocked(f) // everything in it is committed
			closed++
		case d.closableDirty(f):
			d.idleCloseLocked(f)
			f.unsynced = true
			closed++
		}
		f.mu.Unlock()
	}
	return closed
}

// idle reports whether f's descriptor may be closed: open, with everything
// in it committed, and not held by a commit. f.mu is held.
func (f *file) idle() bool {
	return f.fd != nil && !f.dirty && !f.syncing && !f.reopen && f.broken == nil
}

// closeFD closes a target file's descriptor.
func (d *Dir) closeFD(fd *os.File) {
	_ = fd.Close()
	d.openFDs.Add(-1)
}
