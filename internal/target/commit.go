package target

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ack says that a stream's data up to Offset is durable. Owner is the
// stream's owner when the commit finished; nil if none.
type Ack struct {
	Stream *Stream
	Owner  any
	Offset uint64
}

// snapshot is a file's state taken under its lock at the start of a commit.
type snapshot struct {
	f         *file
	fd        *os.File
	ino       uint64
	size      int64
	committed int64 // f.committed for ino when taken
	close     bool  // Reopen: fd was taken from f; close it once recorded
	streams   []streamAt
}

type streamAt struct {
	s      *Stream
	offset uint64
}

// Commit makes everything appended so far durable and returns the streams
// whose committed offset advanced. On error nothing new is acknowledged; the
// data stays pending and the next Commit tries again.
func (d *Dir) Commit() ([]Ack, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	return d.commitLocked()
}

func (d *Dir) commitLocked() ([]Ack, error) {
	d.pendMu.Lock()
	dirty := d.dirty
	d.dirty = make(map[*file]struct{})
	dirs := d.dirSync
	d.dirSync = make(map[string]struct{})
	forget := d.forget
	d.forget = nil
	d.dirtyBytes.Store(0)
	d.pendMu.Unlock()
	if len(dirty) == 0 && len(dirs) == 0 && len(forget) == 0 {
		return nil, nil
	}

	snaps := make([]snapshot, 0, len(dirty))
	for f := range dirty {
		f.mu.Lock()
		if f.broken != nil {
			d.rewindLocked(f)
			f.mu.Unlock()
			continue
		}
		sn := snapshot{f: f, fd: f.fd, ino: f.ino, size: f.size, committed: f.committed}
		for s := range f.touched {
			sn.streams = append(sn.streams, streamAt{s, s.offset})
		}
		clear(f.touched)
		f.dirty = false
		if f.reopen {
			// Appends from now on open the name afresh; this snapshot
			// syncs, records and closes what was written so far.
			f.reopen, f.fd, sn.close = false, nil, true
		}
		f.mu.Unlock()
		snaps = append(snaps, sn)
	}

	var errs []error
	syncStart := time.Now()
	syncErrs := syncAll(snaps)
	ok := snaps[:0]
	for i, sn := range snaps {
		if sn.fd != nil {
			if err := syncErrs[i]; err != nil {
				// After a failed fsync the kernel may have dropped the pages:
				// cut the file back and make the collectors resend.
				errs = append(errs, fmt.Errorf("%w: sync %s: %v", ErrStorage, sn.f.name, err))
				if sn.close {
					_ = sn.fd.Truncate(sn.committed) // best effort; the streams resend anyway
					_ = sn.fd.Close()
				}
				sn.f.mu.Lock()
				sn.f.broken = err
				d.rewindLocked(sn.f)
				sn.f.mu.Unlock()
				continue
			}
		}
		ok = append(ok, sn)
	}
	for dir := range dirs {
		if err := d.syncDir(dir); err != nil {
			errs = append(errs, err)
			d.pendMu.Lock()
			d.dirSync[dir] = struct{}{}
			d.pendMu.Unlock()
		}
	}

	recordStart := time.Now()
	d.timings.Sync = recordStart.Sub(syncStart)
	err := d.db.Update(func(tx *bolt.Tx) error {
		fb, sb := tx.Bucket(bucketFiles), tx.Bucket(bucketStreams)
		for _, sn := range ok {
			if sn.fd != nil {
				if err := fb.Put(fileKey(sn.f.name, sn.ino), fileRecord{Ino: sn.ino, Size: sn.size}.marshal()); err != nil {
					return err
				}
			}
			for _, sa := range sn.streams {
				rec := streamRecord{Committed: sa.offset, Name: sa.s.Name}
				if err := sb.Put(streamKey(sa.s.Key), rec.marshal()); err != nil {
					return err
				}
			}
		}
		for _, k := range forget {
			if err := sb.Delete(streamKey(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Keep the snapshots pending: their data is in the files but not
		// recorded, so it must not be acknowledged yet.
		for _, sn := range ok {
			sn.f.mu.Lock()
			for _, sa := range sn.streams {
				sn.f.touched[sa.s] = struct{}{}
			}
			sn.f.dirty = true
			if sn.close && sn.f.fd == nil {
				sn.f.fd, sn.f.reopen = sn.fd, true // try again next commit
			} else if sn.close {
				// The name was opened afresh meanwhile: the old file's data
				// stays unacknowledged until a crash cuts it back or the
				// streams' next commit records it. Keep it simple: rewind.
				_ = sn.fd.Truncate(sn.committed)
				_ = sn.fd.Close()
				sn.f.broken = err
			}
			sn.f.mu.Unlock()
			d.markDirty(sn.f)
		}
		d.pendMu.Lock()
		d.forget = append(d.forget, forget...)
		d.pendMu.Unlock()
		errs = append(errs, fmt.Errorf("%w: record commit: %v", ErrStorage, err))
		return nil, errors.Join(errs...)
	}

	d.timings.Record = time.Since(recordStart)
	var acks []Ack
	for _, sn := range ok {
		if sn.close {
			_ = sn.fd.Close() // synced and recorded
		}
		f := sn.f
		f.mu.Lock()
		if f.ino == sn.ino && f.broken == nil {
			f.committed = sn.size
		}
		for _, sa := range sn.streams {
			s := sa.s
			if sa.offset > s.committed && s.offset >= sa.offset {
				s.committed = sa.offset
				acks = append(acks, Ack{Stream: s, Owner: s.owner, Offset: sa.offset})
			}
		}
		f.mu.Unlock()
	}
	d.evict(ok)
	return acks, errors.Join(errs...)
}

// maxParallelSyncs bounds the fsyncs a commit runs at once (a variable for
// the benchmark that compares it with one at a time).
var maxParallelSyncs = 32

// syncAll fsyncs the snapshots' files, several at once: the file system
// can then make one journal commit for many of them, where one fsync after
// another waits for a journal commit each (a commit touching 1,000 files
// took 1,000 round trips to the disk).
func syncAll(snaps []snapshot) []error {
	errs := make([]error, len(snaps))
	if len(snaps) == 1 || maxParallelSyncs == 1 {
		for i, sn := range snaps {
			if sn.fd != nil {
				errs[i] = sn.fd.Sync()
			}
		}
		return errs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelSyncs)
	for i, sn := range snaps {
		if sn.fd == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = sn.fd.Sync()
		})
	}
	wg.Wait()
	return errs
}

// evict drops streams that no connection holds and that are fully
// committed, so memory follows attached streams, not every stream ever seen.
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
}

// rewindLocked cuts f back to its committed length after a storage failure
// and sends every stream bound to it back to its committed offset. Owners
// lose their streams (ErrNotOwner) and re-attach, so collectors resend from
// there. f.mu is held; f.broken stays set if the cut fails, and the next
// commit tries again.
func (d *Dir) rewindLocked(f *file) {
	for s := range f.streams {
		s.offset = s.committed
		s.owner = nil
	}
	clear(f.touched)
	if f.fd != nil {
		_ = f.fd.Close() // broken anyway; reopened below
		f.fd = nil
	}
	if f.committed >= 0 {
		fd, err := d.root.OpenFile(f.name, os.O_WRONLY, 0)
		if err == nil {
			err = fd.Truncate(f.committed)
			if err == nil {
				err = fd.Sync()
			}
			_ = fd.Close() // reopened for appending on the next write
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Error("cannot cut target file back to committed length", "name", f.name, "size", f.committed, "err", err)
			f.dirty = true
			d.markDirty(f)
			return
		}
	}
	d.log.Warn("target file rewound to committed length", "name", f.name, "size", f.committed, "err", f.broken)
	f.broken = nil
}

func (d *Dir) syncDir(dir string) error {
	fd, err := d.root.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: open dir %s: %v", ErrStorage, dir, err)
	}
	defer fd.Close()
	if err := fd.Sync(); err != nil {
		return fmt.Errorf("%w: sync dir %s: %v", ErrStorage, dir, err)
	}
	return nil
}

// Reopen makes every target file be opened afresh by name: after logrotate
// moved a file away, a new one appears at its name. Files with appends in
// progress are switched by the commit that Reopen runs, so data written
// before it lands in the old file and everything after in the new one.
func (d *Dir) Reopen() ([]Ack, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	d.mu.Lock()
	files := make([]*file, 0, len(d.files))
	for _, f := range d.files {
		files = append(files, f)
	}
	d.mu.Unlock()
	for _, f := range files {
		f.mu.Lock()
		switch {
		case f.fd == nil:
		case f.dirty:
			f.reopen = true
		default:
			_ = f.fd.Close() // everything in it is committed
			f.fd = nil
		}
		f.mu.Unlock()
	}
	return d.commitLocked()
}

// Close commits what it can and releases the directory.
func (d *Dir) Close() ([]Ack, error) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	acks, err := d.commitLocked()
	d.mu.Lock()
	d.closed = true
	for _, f := range d.files {
		f.mu.Lock()
		if f.fd != nil {
			_ = f.fd.Close() // committed above, or cut back at the next open
			f.fd = nil
		}
		f.mu.Unlock()
	}
	d.mu.Unlock()
	return acks, errors.Join(err, d.db.Close(), d.root.Close())
}

// recover cuts each recorded target file back to its committed length, then
// drops the records: the next open of a name records it afresh.
// Recovery cases:
//   - the file at the name has the recorded inode: truncate it to the
//     recorded size if it is longer;
//   - the name now holds another file or none: logrotate moved the recorded
//     file away; look for its inode in the same directory and cut that one;
//   - the file is shorter than recorded: someone truncated it; leave it.
func (d *Dir) recover() error {
	type entry struct {
		key  []byte
		name string
		rec  fileRecord
	}
	var entries []entry
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, v []byte) error {
			name, err := parseFileKey(k)
			if err != nil {
				return err
			}
			rec, err := unmarshalFile(v)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			entries = append(entries, entry{bytes.Clone(k), name, rec})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	for _, e := range entries {
		name := e.name
		ino, size, err := d.inode(name)
		if err == nil && ino != e.rec.Ino {
			err = fs.ErrNotExist
		}
		if errors.Is(err, fs.ErrNotExist) {
			moved, ok := d.findInode(path.Dir(e.name), e.rec.Ino)
			if !ok {
				continue
			}
			name = moved
			_, size, err = d.inode(name)
		}
		if err != nil {
			return fmt.Errorf("recover %s: %w", name, err)
		}
		if size <= e.rec.Size {
			continue
		}
		if err := d.truncate(name, e.rec.Size); err != nil {
			return fmt.Errorf("recover %s: %w", name, err)
		}
		d.log.Info("target file cut back to committed length", "name", name, "size", e.rec.Size, "bytes", size-e.rec.Size)
	}
	if len(entries) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		for _, e := range entries {
			if err := tx.Bucket(bucketFiles).Delete(e.key); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *Dir) inode(name string) (ino uint64, size int64, err error) {
	st, err := d.root.Lstat(name)
	if err != nil {
		return 0, 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, 0, fs.ErrNotExist
	}
	return st.Sys().(*syscall.Stat_t).Ino, st.Size(), nil
}

// findInode looks in dir for a regular file with inode ino.
func (d *Dir) findInode(dir string, ino uint64) (string, bool) {
	fd, err := d.root.Open(dir)
	if err != nil {
		return "", false
	}
	defer fd.Close()
	ents, err := fd.ReadDir(-1)
	if err != nil {
		return "", false
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err == nil && info.Sys().(*syscall.Stat_t).Ino == ino {
			return path.Join(dir, e.Name()), true
		}
	}
	return "", false
}

func (d *Dir) truncate(name string, size int64) error {
	fd, err := d.root.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := fd.Truncate(size); err != nil {
		return err
	}
	return fd.Sync()
}
