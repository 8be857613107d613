package target

import (
	"sort"
	"time"
)

// CloseIdle closes the descriptors of the files appended to least recently
// and with nothing uncommitted, once more than max are open, down to 90% of
// max. The next append to such a file opens its name again. It returns how
// many it closed.
func (d *Dir) CloseIdle(max int) int {
	d.commitMu.Lock() // a commit may be syncing a descriptor it snapshotted
	defer d.commitMu.Unlock()
	files := d.allFiles()
	type candidate struct {
		f    *file
		last time.Time
	}
	var idle []candidate
	open := 0
	for _, f := range files {
		f.mu.Lock()
		if f.fd != nil {
			open++
			if !f.dirty && !f.reopen && f.broken == nil {
				idle = append(idle, candidate{f, f.last})
			}
		}
		f.mu.Unlock()
	}
	if open <= max {
		return 0
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].last.Before(idle[j].last) })
	closed := 0
	for _, c := range idle {
		if open <= max*9/10 {
			break
		}
		f := c.f
		f.mu.Lock()
		if f.fd != nil && !f.dirty && !f.reopen && f.broken == nil {
			d.idleCloseLocked(f) // everything in it is committed
			open--
			closed++
		}
		f.mu.Unlock()
	}
	return closed
}
