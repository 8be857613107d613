package target

import (
	"errors"
	"time"
)

// Target files are a bounded resource: at most MaxOpenFiles descriptors
// are open (openFDs counts them), whatever the number of files. An append
// to a file without one first makes room: it closes the files idle longest
// (all in them committed), or, when every open file holds uncommitted
// data, has a commit made so that some become idle, and waits for it.

// errNoRoom: an append needs a descriptor and MaxOpenFiles are open;
// errNoFDs: the process is out of them (EMFILE, ENFILE), below MaxOpenFiles.
var (
	errNoRoom = errors.New("no file descriptor free")
	errNoFDs  = errors.New("out of file descriptors")
	// errReopening: the file waits for a Reopen's commit (Stream.append).
	errReopening = errors.New("target file being reopened")
)

const (
	roomPatience = 8 * time.Second // an append waits for room, then opens over the budget
	roomWait     = 2 * time.Second // at most, per makeRoom
)

// takeFD counts a descriptor about to be opened, if fewer than appendFDs
// are: counted before the open, so that appends opening at once cannot all
// pass the check. The last of an append's tries (last) takes one anyway: a
// shortage that outlasts roomPatience slows it, it does not fail it.
func (d *Dir) takeFD(last bool) bool {
	for {
		n := d.openFDs.Load()
		if n >= int64(d.appendFDs()) && !last {
			return false
		}
		if d.openFDs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// appendFDs is how many descriptors appends may hold: with write-behind,
// one of MaxOpenFiles is the commit's, for the file it writes while that
// is closed (behind.go).
func (d *Dir) appendFDs() int {
	if d.syncfs && d.cfg.MaxOpenFiles > 1 {
		return d.cfg.MaxOpenFiles - 1
	}
	return d.cfg.MaxOpenFiles
}

// makeRoom closes idle target files until fewer than appendFDs are open
// or, with short (the process ran out of descriptors below the budget), half
// of those open: the budget does not fit, and closing a few at a time would
// meet the limit again at once. It waits, with commits asked for, up to roomWait.
// One caller at a time does the work; the others find the room it made.
func (d *Dir) makeRoom(short bool) {
	d.roomMu.Lock()
	defer d.roomMu.Unlock()
	limit := d.appendFDs() - 1
	if short {
		limit = int(d.openFDs.Load()) / 2
		d.log.Warn("out of file descriptors below --max-open-files; closing idle target files", "open", d.openFDs.Load(), "max_open_files", d.cfg.MaxOpenFiles)
		// The commit that makes files idle needs descriptors of its own
		// (directories to fsync): give it the reserve, taken back after.
		d.reserve.release()
		defer d.reserve.take(int(d.tree.root.Fd()))
	}
	deadline := time.Now().Add(roomWait)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if int(d.openFDs.Load()) <= limit || d.CloseIdle(limit) > 0 || time.Now().After(deadline) {
			return
		}
		d.notify(true) // every open file holds uncommitted data: commit it
		time.Sleep(wait)
	}
}
