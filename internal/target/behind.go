package target

import (
	"errors"
	"fmt"
	"time"
)

// Write-behind. With more busy target files than descriptors (30,000 files
// under a limit of 20,000 that 10,000 connections share), an append to a
// file without a descriptor would wait until a commit made some open file
// idle: a few thousand files moved on per commit, a frame each, and every
// frame cost an open and a close. Instead such an append keeps its payload
// in memory, as if written, and returns. The next commit writes each
// file's buffer with one open and one write, closes it at once, and makes
// them all durable with one syncfs(2), which needs no descriptor. However
// many frames a file got meanwhile, it costs one open per commit, and
// sessions never wait for a descriptor while the buffers stay under
// maxBehind.
//
// Only a file closed idle (everything in it committed), recorded, and on
// the target's file system where commits may use syncfs is buffered: its
// record and ledger stay valid, so the commit continues the file where it
// was. If the name no longer holds that file, unchanged, the buffered bytes
// are dropped and the file's streams rewound: their collectors resend them
// to whatever file is at the name now.

// maxBehind bounds the bytes buffered in all files; past it, appends wait
// for the next commit to write them (errBehindFull, waitBehind).
const maxBehind = 128 << 20

var errBehindFull = errors.New("write-behind buffers full")

// canBuffer reports whether an append to f, which has no descriptor, may
// be buffered. f.mu is held.
func (d *Dir) canBuffer(f *file) bool {
	return d.syncfs && f.fd == nil && f.committed >= 0 && f.id.Dev == d.fsDev &&
		f.broken == nil && !f.fsync
}

// waitBehind waits, at most roomWait, until a commit wrote buffered
// bytes, if the buffers are full.
func (d *Dir) waitBehind() {
	d.behindMu.Lock()
	written := d.behindWritten
	d.behindMu.Unlock()
	if d.behindBytes.Load() < maxBehind {
		return
	}
	d.notify(true)
	t := time.NewTimer(roomWait)
	defer t.Stop()
	select {
	case <-written:
	case <-t.C:
	}
}

// wroteBehind wakes the appends waiting in waitBehind.
func (d *Dir) wroteBehind() {
	d.behindMu.Lock()
	close(d.behindWritten)
	d.behindWritten = make(chan struct{})
	d.behindMu.Unlock()
}

// closableDirty reports whether f's descriptor may be closed with bytes in
// it not yet committed: the commit syncs them with syncfs, which needs no
// descriptor, and opens f again to check it first. f.mu is held.
func (d *Dir) closableDirty(f *file) bool {
	return f.fd != nil && f.dirty && !f.syncing && !f.reopen && f.committed >= 0 &&
		d.syncfs && f.id.Dev == d.fsDev && f.broken == nil && !f.fsync
}

// written is how much of f is in its file: f.size counts the buffer too.
func (f *file) written() int64 { return f.size - int64(len(f.behind)) }

// dropBehind forgets f's buffer (a rewind). f.mu is held.
func (d *Dir) dropBehind(f *file) {
	if len(f.behind) == 0 {
		return
	}
	f.size -= int64(len(f.behind))
	d.behindBytes.Add(-int64(len(f.behind)))
	f.behind = nil
}

// flushLocked writes f's buffer at the end of its file, opened for it with
// the descriptor of the budget that appends leave to commits (appendFDs;
// one at a time: commits run one after another), and reports whether the caller must close it again once it
// took its snapshot, and !ok if the process is out of descriptors: f waits
// for the next commit, unacknowledged. On failure f.broken is set and the
// snapshot rewinds f. f.mu and commitMu are held.
func (d *Dir) flushLocked(f *file) (borrowed, ok bool) {
	if f.fd == nil {
		// Closed with bytes written or buffered: open it again, which
		// checks that the name holds it, unchanged (openLocked). Not
		// made if gone: someone deleted it, and the rewind ends there;
		// only the resend makes the name again.
		d.openFDs.Add(1)
		err := d.openLocked(f, false)
		if outOfFDs(err) {
			// What the reserve is for (budget.go).
			d.reserve.release()
			err = d.openLocked(f, false)
			d.reserve.take(int(d.tree.root.Fd()))
		}
		if outOfFDs(err) {
			// Out of descriptors: the bytes wait for the next commit.
			d.openFDs.Add(-1)
			return false, false
		}
		if err != nil {
			d.openFDs.Add(-1)
			if f.broken == nil {
				f.broken = fmt.Errorf("open to write what was buffered: %w", err)
			}
			d.dropBehind(f)
			return false, true
		}
		borrowed = true
	}
	if len(f.behind) > 0 {
		d.writeBehind(f)
	}
	return borrowed, true
}

// writeBehind writes f's buffer through its descriptor and reports whether
// it could; if not, what it wrote is cut back, the buffer is dropped and
// f.broken set. f.mu is held.
func (d *Dir) writeBehind(f *file) bool {
	n, err := f.fd.Write(f.behind)
	if err != nil {
		if n > 0 {
			if terr := cutWrite(f.fd, n); terr != nil {
				err = errors.Join(err, terr)
			}
		}
		f.broken = fmt.Errorf("write what was buffered: %w", err)
		d.dropBehind(f)
		return false
	}
	d.behindBytes.Add(-int64(len(f.behind)))
	f.behind = nil
	return true
}

// syncClosed fsyncs a file written and closed by this commit (unsynced),
// through a descriptor of its own opened again by name, when a syncfs could
// not be used or failed; a file that fails is cut back to what is
// committed, so its streams' resent bytes are not there twice. commitMu is
// held.
func (d *Dir) syncClosed(sn snapshot) error {
	fd, _, err := d.tree.openFile(sn.f.name, 0, false, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	info, err := identify(fd)
	switch {
	case err != nil:
		return err
	case !info.id.sameFile(sn.id):
		return errors.New("replaced before it was synced")
	}
	if err := fd.Sync(); err != nil {
		_, _ = cutTo(fd, sn.committed) // best effort; the streams resend anyway
		return err
	}
	return nil
}

// cutClosed cuts f, which has no descriptor, back to its committed length
// if it was written and closed (a rewind): through one opened for it where
// recovery would find it, at its name or renamed beside it (logrotate),
// so what its streams resend is not also left there. f.mu is held.
func (d *Dir) cutClosed(f *file) error {
	if !f.unsynced {
		return nil // nothing but what is committed is in it
	}
	fd, err := d.findRecorded(f.name, f.id)
	if err != nil {
		return err
	}
	if fd != nil {
		defer fd.Close()
		if _, err := cutTo(fd, f.committed); err != nil {
			return err
		}
		if err := fd.Sync(); err != nil {
			return err
		}
	}
	f.size, f.unsynced = f.committed, false // or gone: nothing to cut
	return nil
}
