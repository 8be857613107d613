package target

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/stream"
)

// Ack says that a stream's data up to At is durable. Owner is the
// stream's owner when the commit finished; nil if none.
type Ack struct {
	Stream *Stream
	Owner  stream.Owner
	At     stream.Mark
}

// deliver hands acks to their owners.
func deliver(acks []Ack) {
	for _, a := range acks {
		if a.Owner != nil {
			a.Owner.Committed(a.At)
		}
	}
}

// snapshot is a file's state taken under its lock at the start of a commit.
type snapshot struct {
	f         *file
	fd        *os.File
	id        fileID
	serial    uint64
	size      int64
	committed int64 // f.committed for fd when taken
	close     bool  // Reopen: fd was taken from f; close it once recorded
	fsync     bool  // fd is synced with an fsync of its own, never syncfs (sync.go)
	unsynced  bool  // no fd: written through one closed since, synced without it (behind.go)
	journaled bool  // its bytes since the last commit are in the journal: not synced (journal.go)
	streams   []streamAt
	ledger    ledgerAt // f's ledger entry at size
}

type streamAt struct {
	s     *Stream
	at    stream.Mark
	lines uint64
}

// Commit makes everything appended so far durable and returns the streams
// whose committed offset advanced. On error nothing new is acknowledged; the
// data stays pending and the next Commit tries again.
func (d *Dir) Commit() ([]Ack, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	return d.commitLocked()
}

// pending is what a commit takes over from the appenders.
type pending struct {
	dirty map[*file]struct{}
	dirs  map[string]struct{}
	drops []drop
}

func (d *Dir) takePending() pending {
	d.pendMu.Lock()
	defer d.pendMu.Unlock()
	p := pending{dirty: d.dirty, dirs: d.dirSync, drops: d.drops}
	d.dirty = make(map[*file]struct{})
	d.dirSync = make(map[string]struct{})
	d.drops = nil
	d.dirtyBytes.Store(0)
	return p
}

// putBack returns what a failed state transaction did not record.
func (d *Dir) putBack(p pending) {
	d.pendMu.Lock()
	d.drops = append(d.drops, p.drops...)
	d.pendMu.Unlock()
}

func (d *Dir) commitLocked() ([]Ack, error) {
	p := d.takePending()
	if len(p.dirty) == 0 && len(p.dirs) == 0 && len(p.drops) == 0 && !d.forgetting() {
		return nil, nil
	}
	snapStart := time.Now()
	jr := d.journalFor(len(p.dirty))
	snaps := make([]snapshot, 0, len(p.dirty))
	behind := d.behindBytes.Load()
	var errs []error
	waiting := 0
	for f := range p.dirty {
		sn, ok, wait := d.snapshot(f, jr)
		if ok {
			snaps = append(snaps, sn)
		}
		if wait {
			waiting++
		}
	}
	if behind > 0 {
		d.wroteBehind()
	}
	if waiting > 0 {
		// An error, so that Run commits again (with backoff) though
		// nothing else is appended: the files wait for it.
		errs = append(errs, fmt.Errorf("%w: out of file descriptors: %d target files wait for the next commit to write what was buffered for them", ErrStorage, waiting))
	}
	defer doneSyncing(slices.Clone(snaps))
	// Records of files closed since the commit began (deleted ones found
	// just now) go in this transaction.
	d.pendMu.Lock()
	p.drops = append(p.drops, d.drops...)
	d.drops = nil
	d.pendMu.Unlock()

	syncStart := time.Now()
	d.timings.snapshot = syncStart.Sub(snapStart)
	d.syncJournal(jr, snaps)
	syncErrs := d.syncAll(snaps)
	ok := snaps[:0]
	for i, sn := range snaps {
		if sn.wrote() {
			if err := syncErrs[i]; err != nil {
				// After a failed fsync the kernel may have dropped the pages:
				// cut the file back and make the collectors resend.
				errs = append(errs, fmt.Errorf("%w: sync %s: %v", ErrStorage, sn.f.name, err))
				sn.f.mu.Lock()
				if sn.close {
					// Taken from f by Reopen: cut and close it here.
					_, _ = cutTo(sn.fd, sn.committed) // best effort; the streams resend anyway
					d.closeFD(sn.fd)
					d.releaseID(sn.id, sn.f)
				}
				sn.f.broken = err
				d.rewindLocked(sn.f)
				sn.f.mu.Unlock()
				continue
			}
		}
		ok = append(ok, sn)
	}
	unsynced, dirErrs := d.syncDirs(p.dirs)
	errs = append(errs, dirErrs...)
	ok = d.holdUnder(ok, unsynced)

	recordStart := time.Now()
	d.timings.sync = recordStart.Sub(syncStart)
	if d.jnl != nil {
		// Records of files whose bytes may be in the journal alone stay
		// until a checkpoint (journal.go).
		p.drops = d.jnl.hold(p.drops)
	}
	if err := d.recordLocked(ok, p); err != nil {
		d.unrecorded(ok, err)
		d.putBack(p)
		errs = append(errs, fmt.Errorf("%w: record commit: %v", ErrStorage, err))
		d.broadcastSettled()
		return nil, errors.Join(errs...)
	}
	d.timings.record = time.Since(recordStart)
	acks := d.committedLocked(ok)
	d.evict(ok)
	if d.jnl != nil {
		d.jnl.maybeCheckpoint(false)
	}
	return acks, errors.Join(errs...)
}

// snapshot takes f's state for a commit, looking at the file first: if it
// was deleted, what was appended since the last commit went into a file
// nobody can read, and the streams go back to their committed offsets; if
// someone else wrote to it, its length is what it is, not what we wrote.
// wait reports a file left for the next commit (out of descriptors).
func (d *Dir) snapshot(f *file, jr *journal) (sn snapshot, ok, wait bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var borrowed bool
	if f.fd == nil && (len(f.behind) > 0 || f.unsynced) {
		if borrowed, ok = d.flushLocked(f); !ok {
			d.markDirty(f) // the next commit tries again
			return snapshot{}, false, true
		}
	}
	if f.broken == nil && f.fd != nil {
		info, err := statFD(int(f.fd.Fd()))
		switch {
		case err != nil:
			f.broken = err
		case info.nlink == 0:
			d.log.Warn("target file deleted while written; its streams resend what it got since the last commit to a new file", "name", f.name)
			d.closeLocked(f)
			f.broken = errors.New("deleted")
		case info.size < f.size:
			// Truncated by someone: what we appended since the last commit
			// may be gone; nothing of it is acknowledged, it is resent.
			d.log.Warn("target file truncated by another process; its streams resend what it got since the last commit", "name", f.name, "size", info.size, "written", f.size)
			f.committed = min(f.committed, info.size)
			f.broken = errors.New("truncated by another process")
		case info.size > f.size:
			// Another writer appended: its bytes are not ours to cut.
			d.log.Warn("target file appended to by another writer", "name", f.name, "size", info.size, "written", f.size)
			f.size = info.size
		}
	}
	if f.broken != nil {
		d.rewindLocked(f)
		return snapshot{}, false, false
	}
	sn = snapshot{f: f, fd: f.fd, id: f.id, serial: f.serial, size: f.size, committed: f.committed, fsync: f.fsync}
	f.fsync = false
	if f.fd != nil || f.unsynced {
		sn.ledger = f.takeLedger(f.size)
	}
	if jr != nil && f.fd != nil && !sn.fsync && !f.reopen && f.id.Dev == d.fsDev && sn.committed >= 0 {
		// Copied into the journal instead of synced, read back through
		// the descriptor the bytes went through; if it cannot be read
		// (a file not ours to read), synced.
		sn.journaled = jr.add(f.id, f.serial, f.fd, sn.committed, sn.size) == nil
	}
	if borrowed && f.fd != nil {
		// Written with the commit's descriptor (appendFDs): give it
		// back now; syncfs needs none (behind.go).
		d.idleCloseLocked(f)
		sn.fd, f.unsynced = nil, true
	}
	sn.unsynced = sn.fd == nil && f.unsynced
	for s := range f.touched {
		sn.streams = append(sn.streams, streamAt{s, s.at, s.lines})
	}
	clear(f.touched)
	f.dirty = false
	f.syncing = true
	if f.reopen {
		// Appends from now on open the name afresh; this snapshot
		// syncs, records and closes what was written so far.
		f.reopen, f.fd, f.committed, sn.close = false, nil, -1, true
	}
	return sn, true, false
}

// recordLocked runs a commit's state transaction. It deletes the records
// of the forgotten streams that left memory; d.mu is held across the
// choice and the transaction when there are any, so no Attach reads such
// a record in between and then loses it, and an Attach after it finds
// none. commitMu is held.
func (d *Dir) recordLocked(snaps []snapshot, p pending) error {
	d.mu.Lock()
	var forget []stream.Key
	for k := range d.forget {
		if d.streams[k] == nil {
			forget = append(forget, k)
		}
	}
	if len(forget) == 0 {
		d.mu.Unlock()
		return d.recordCounted(snaps, p, nil)
	}
	defer d.mu.Unlock()
	err := d.recordCounted(snaps, p, forget)
	if err == nil {
		for _, k := range forget {
			delete(d.forget, k)
		}
	}
	return err
}

// recordCounted runs record and counts the commit (generation.go).
func (d *Dir) recordCounted(snaps []snapshot, p pending, forget []stream.Key) error {
	var gen uint64
	err := d.db.Update(func(tx *bolt.Tx) error {
		if err := record(tx, snaps, p, forget); err != nil {
			return err
		}
		var err error
		gen, err = countCommit(tx)
		return err
	})
	if err == nil {
		d.wroteGeneration(gen)
	}
	return err
}

// forgetting reports whether a stream record waits to be deleted.
func (d *Dir) forgetting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.forget) > 0
}

// record writes a commit's state transaction: each synced file's length
// (or, for a file Reopen took away, the removal of its record: it is closed
// and all in it is committed), each stream's committed offset, and the
// records the commit was asked to drop, and the forgotten streams' records.
func record(tx *bolt.Tx, snaps []snapshot, p pending, forget []stream.Key) error {
	fb, sb := tx.Bucket(bucketFiles), tx.Bucket(bucketStreams)
	for _, sn := range snaps {
		if sn.wrote() {
			var err error
			if sn.close {
				err = dropRecord(fb, drop{fileKey(sn.f.name, sn.id.Ino), sn.serial})
			} else {
				err = fb.Put(fileKey(sn.f.name, sn.id.Ino), fileRecord{ID: sn.id, Size: sn.size, Serial: sn.serial}.marshal())
			}
			if err == nil {
				err = putLedger(tx, sn.f.name, sn.ledger) // with the length: they agree
			}
			if err != nil {
				return err
			}
		}
		for _, sa := range sn.streams {
			if err := putStream(sb, sa.s.Key, streamRecord{Committed: sa.at.Offset, Digest: sa.at.Digest, NoDigest: sa.at.Unknown, Lines: sa.lines, Name: sa.s.Name}); err != nil {
				return err
			}
		}
	}
	for _, k := range forget {
		if err := sb.Delete(streamKey(k)); err != nil {
			return err
		}
	}
	for _, dr := range p.drops {
		if err := dropRecord(fb, dr); err != nil {
			return err
		}
	}
	return nil
}

// putStream records a stream's committed offset. It never moves a record
// back: two in-memory streams of one key (one renamed from the other) may
// be recorded in one transaction.
func putStream(b *bolt.Bucket, k stream.Key, rec streamRecord) error {
	key := streamKey(k)
	if v := b.Get(key); v != nil {
		if old, err := unmarshalStream(v); err == nil && old.Committed > rec.Committed {
			return nil
		}
	}
	return b.Put(key, rec.marshal())
}

// dropRecord deletes a file record if it is still the one written with
// dr's serial: the name may have been opened and recorded again since.
func dropRecord(b *bolt.Bucket, dr drop) error {
	v := b.Get(dr.key)
	if v == nil {
		return nil
	}
	if rec, err := unmarshalFile(v); err == nil && !rec.Legacy && rec.Serial != dr.serial {
		return nil
	}
	return b.Delete(dr.key)
}

// syncDirs fsyncs the directories whose entries changed and returns those
// that failed, queued for the next commit, with their errors.
func (d *Dir) syncDirs(dirs map[string]struct{}) (failed []string, errs []error) {
	for dir := range dirs {
		if err := d.syncDir(dir); err != nil {
			errs = append(errs, err)
			failed = append(failed, dir)
			d.pendMu.Lock()
			d.dirSync[dir] = struct{}{}
			d.pendMu.Unlock()
		}
	}
	return failed, errs
}

// holdUnder keeps pending, unrecorded, the snapshots of files under the
// directories whose fsync failed (their entries, or their parents', may
// not be durable: a crash could lose the files with all in them) and
// returns the others. The next commit syncs the directories again.
func (d *Dir) holdUnder(snaps []snapshot, dirs []string) []snapshot {
	if len(dirs) == 0 {
		return snaps
	}
	under := func(name string) bool {
		return slices.ContainsFunc(dirs, func(dir string) bool { return dir == "." || strings.HasPrefix(name, dir+"/") })
	}
	var held, rest []snapshot
	for _, sn := range snaps {
		if under(sn.f.name) {
			held = append(held, sn)
		} else {
			rest = append(rest, sn)
		}
	}
	d.unrecorded(held, errors.New("its directory could not be synced"))
	return rest
}

// unrecorded keeps the snapshots pending after a failed state transaction:
// their data is in the files but not recorded, so it must not be
// acknowledged yet.
func (d *Dir) unrecorded(snaps []snapshot, err error) {
	for _, sn := range snaps {
		sn.f.mu.Lock()
		for _, sa := range sn.streams {
			sn.f.touched[sa.s] = struct{}{}
		}
		sn.f.dirty = true
		sn.f.giveBackLedger(sn.ledger)
		switch {
		case sn.close && sn.f.fd == nil:
			// Try again next commit.
			sn.f.fd, sn.f.committed, sn.f.reopen = sn.fd, sn.committed, true
		case sn.close:
			// The name was opened afresh meanwhile: the old file's data
			// stays unacknowledged until a crash cuts it back or the
			// streams' next commit records it. Keep it simple: rewind.
			_, _ = cutTo(sn.fd, sn.committed)
			d.closeFD(sn.fd)
			d.releaseID(sn.id, sn.f)
			sn.f.broken = err
		}
		sn.f.mu.Unlock()
		d.markDirty(sn.f)
	}
}

// committedLocked applies a recorded commit: lengths and offsets are now
// committed; it returns the acknowledgements. commitMu is held.
func (d *Dir) committedLocked(snaps []snapshot) []Ack {
	var acks []Ack
	for _, sn := range snaps {
		f := sn.f
		f.mu.Lock()
		if sn.close {
			d.closeFD(sn.fd) // synced, and its record dropped
			d.releaseID(sn.id, f)
		}
		if sn.wrote() && !sn.close && f.serial == sn.serial && f.committed >= 0 {
			// Recorded, also if an append broke f since (its name holds
			// another file now, or a failed write could not be cut): a
			// rewind must not cut below this.
			f.committed = sn.size
			if sn.unsynced {
				f.unsynced = false
			}
		}
		for _, sa := range sn.streams {
			s := sa.s
			if sa.at.Offset > s.done.Offset && s.at.Offset >= sa.at.Offset {
				s.done, s.doneLines = sa.at, sa.lines
				acks = append(acks, Ack{Stream: s, Owner: s.owner, At: sa.at})
			}
		}
		f.mu.Unlock()
	}
	return acks
}

// wrote reports whether the snapshot's file took bytes to sync and record.
func (sn snapshot) wrote() bool { return sn.fd != nil || sn.unsynced }

// doneSyncing lets idle closes take the snapshots' descriptors again.
func doneSyncing(snaps []snapshot) {
	for _, sn := range snaps {
		sn.f.mu.Lock()
		sn.f.syncing = false
		sn.f.mu.Unlock()
	}
}

// evict drops streams that no connection holds and that are fully
// committed, so memory follows attached streams, not every stream ever seen,
// and wakes Attach calls waiting for renamed streams to settle.
func (d *Dir) evict(snaps []snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sn := range snaps {
		sn.f.mu.Lock()
		for _, sa := range sn.streams {
			d.evictLocked(sa.s)
		}
		sn.f.mu.Unlock()
	}
	d.settled.Broadcast()
}

// rewindLocked cuts f back to its committed length after a storage failure
// and sends every stream bound to it back to its committed offset. Owners
// lose their streams (ErrNotOwner) and re-attach, so collectors resend from
// there. The cut goes through f's own descriptor, never through its name,
// which may hold another file by now. f.mu is held; f.broken stays set if
// the cut fails, and the next commit tries again.
func (d *Dir) rewindLocked(f *file) {
	d.dropBehind(f)
	for s := range f.streams {
		s.at, s.lines = s.done, s.doneLines
		s.owner = nil
	}
	for s := range f.touched {
		s.at, s.lines = s.done, s.doneLines // a stream renamed away, with bytes here
	}
	clear(f.touched)
	f.ledgerState = ledgerState{} // the next open reads the committed entry
	if f.fd != nil {
		size, err := cutTo(f.fd, f.committed)
		if err == nil {
			err = f.fd.Sync()
		}
		if err != nil {
			d.log.Error("cannot cut target file back to committed length", "name", f.name, "size", f.committed, "err", err)
			f.dirty = true
			d.markDirty(f)
			return
		}
		f.size = size
		d.closeLocked(f) // reopened, and recorded afresh, on the next write
	} else if f.committed >= 0 {
		// Closed with bytes buffered, or written (behind.go).
		if err := d.cutClosed(f); err != nil {
			d.log.Error("cannot cut target file back to committed length", "name", f.name, "size", f.committed, "err", err)
			f.dirty = true
			d.markDirty(f)
			return
		}
		d.closeLocked(f) // recorded afresh on the next write
	}
	d.log.Warn("target file rewound to committed length", "name", f.name, "err", f.broken)
	f.broken = nil
	// Nothing uncommitted is left: the next append must queue the file for
	// a commit again (it stayed dirty, and was never committed, when its
	// file had been deleted).
	f.dirty = false
}
