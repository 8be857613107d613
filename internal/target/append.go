package target

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/digest"
	"thunder/internal/stream"
)

// Append writes c's payload, the lines for source offsets [c.Offset, c.End),
// at the end of the stream's target file. It is written with one write(2)
// under the file's lock, so lines of different streams never interleave; a
// failed write is cut back so no partial line stays in the file.
//
// A file that must be opened first waits for a descriptor within
// MaxOpenFiles (budget.go): a shortage slows appends, it does not fail them.
func (s *Stream) Append(owner stream.Owner, c stream.Chunk) error {
	// The patience is time, not tries: appends racing for the room one
	// of them made lose tries in a moment, and a budget that gave way
	// after a few lost races was no budget (17 open under 16).
	// The clock is read only once an append must wait: most never do.
	var deadline time.Time
	for try := 0; ; try++ {
		last := !deadline.IsZero() && !time.Now().Before(deadline)
		err := s.append(owner, c, last)
		if err == errReopening {
			// Until that commit is over (commitMu: nothing is held here).
			s.d.commitMu.Lock()
			//lint:ignore SA2001 an empty critical section: waiting for the commit is the point
			s.d.commitMu.Unlock()
			continue
		}
		if err != errNoRoom && err != errNoFDs && err != errBehindFull {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(roomPatience)
		}
		if last {
			return fmt.Errorf("%w: %s: out of file descriptors (%d target files open; --max-open-files is %d)", ErrStorage, s.f.name, s.d.openFDs.Load(), s.d.cfg.MaxOpenFiles)
		}
		if err == errBehindFull {
			s.d.waitBehind()
		} else {
			s.d.makeRoom(err == errNoFDs && try > 0)
		}
	}
}

// append is one try of Append. It returns, having done nothing, errNoRoom
// if the file needs a descriptor and MaxOpenFiles are open (but at the last
// try), errNoFDs if the process is out of them.
func (s *Stream) append(owner stream.Owner, c stream.Chunk, last bool) error {
	d, f := s.d, s.f
	f.mu.Lock()
	if s.owner != owner || s.owner == nil {
		f.mu.Unlock()
		return ErrNotOwner
	}
	if c.Offset != s.at.Offset {
		f.mu.Unlock()
		return fmt.Errorf("%w: got %d, stream is at %d", ErrOffset, c.Offset, s.at.Offset)
	}
	if f.broken != nil {
		err := f.broken
		f.mu.Unlock()
		return fmt.Errorf("%w: %s: %v", ErrStorage, f.name, err)
	}
	if f.fd == nil && f.committed < 0 && f.syncing {
		// A Reopen's commit took f's descriptor and has not recorded what
		// it holds yet (commit.go, snapshot). Opening the name now would
		// record the file found there, the same one if nothing rotated
		// it, at its length now, bytes that commit has not made durable
		// included: a crash before that commit would keep them, and the
		// streams would resend them. So the open waits for it.
		f.mu.Unlock()
		return errReopening
	}
	buffer := false
	if f.fd == nil {
		switch {
		case len(f.behind) > 0 && !last:
			// Behind what waits (behind.go).
			if d.behindBytes.Load() >= maxBehind {
				f.mu.Unlock()
				return errBehindFull
			}
			buffer = true
		case d.takeFD(last):
			if err := d.openLocked(f, true); err != nil {
				d.openFDs.Add(-1)
				f.mu.Unlock()
				if outOfFDs(err) {
					return errNoFDs
				}
				return err
			}
			if len(f.behind) > 0 && !d.writeBehind(f) {
				err := f.broken
				f.mu.Unlock()
				return fmt.Errorf("%w: %s: %v", ErrStorage, f.name, err)
			}
		case d.canBuffer(f):
			if d.behindBytes.Load() >= maxBehind {
				f.mu.Unlock()
				return errBehindFull
			}
			buffer = true
		default:
			f.mu.Unlock()
			return errNoRoom
		}
	}
	n := len(c.Payload)
	if buffer {
		f.behind = append(f.behind, c.Payload...)
		d.behindBytes.Add(int64(n))
	} else if n, err := f.fd.Write(c.Payload); err != nil {
		if n > 0 {
			// Cut what this write left, from what the file holds now
			// (someone may have truncated it since we last looked).
			if terr := cutWrite(f.fd, n); terr != nil {
				f.broken = terr
				d.markDirty(f) // for the commit that rewinds it: f may be clean
			}
		}
		f.mu.Unlock()
		return fmt.Errorf("%w: write %s: %v", ErrStorage, f.name, err)
	}
	f.size += int64(n)
	f.sum = digest.Extend(f.sum, c.Sum, c.Payload) // the file's running digest: its ledger entry's (ledger.go)
	f.advance(f.size, c.Lines)
	f.last = time.Now()
	s.at = s.at.After(c)
	s.lines += uint64(c.Lines)
	f.touched[s] = struct{}{}
	wasDirty := f.dirty
	f.dirty = true
	f.mu.Unlock()
	dirty := d.dirtyBytes.Add(int64(n))
	if !wasDirty {
		d.markDirty(f)
	}
	d.notify(dirty >= d.cfg.CommitBytes)
	return nil
}

// openLocked opens f's file for appending, with create making it and its
// parent directories if missing, and records it before the first write: a
// crash before the next commit must cut it back to where we found it,
// since the streams writing to it resend from their committed offsets.
// f.mu is held, and the descriptor counted (takeFD).
func (d *Dir) openLocked(f *file, create bool) error {
	flags := os.O_APPEND
	if d.jnl != nil {
		flags |= os.O_RDWR // a journaled commit reads back what it copies (journal.go)
	}
	fd, created, err := d.tree.openFile(f.name, flags, create, d.cfg.FileMode)
	if err != nil && flags&os.O_RDWR != 0 && errors.Is(err, fs.ErrPermission) {
		// Not ours to read: written, and synced, as before the journal.
		var more []string
		fd, more, err = d.tree.openFile(f.name, os.O_APPEND, create, d.cfg.FileMode)
		created = append(created, more...)
	}
	// Synced whatever fails next: the next open finds what this one made.
	d.dirsCreated(created)
	if err != nil {
		return err
	}
	info, err := identify(fd)
	if err != nil {
		fd.Close()
		return fmt.Errorf("%w: stat %s: %v", ErrStorage, f.name, err)
	}
	if f.committed >= 0 && info.id.sameFile(f.id) && info.size == f.written() && info.nlink > 0 {
		// Closed while idle (or by a commit that wrote its buffer), and
		// nothing changed it since: its record, and its claim on the
		// inode, hold. What a closed descriptor wrote is synced through
		// this one now.
		f.fd, f.unsynced = fd, false
		d.m.opened("reopen")
		return nil
	}
	if len(f.behind) > 0 || f.unsynced {
		// What was buffered, or written and closed, continues the file
		// that was at the name. The rewind cuts that file back by its
		// record, then drops it: the next open records this one afresh.
		fd.Close()
		f.broken = errors.New("target file replaced or changed while it was closed; its streams resend what was not yet written")
		d.markDirty(f) // for that rewind, also if a commit took f just now
		return fmt.Errorf("%w: %s: %v", ErrStorage, f.name, f.broken)
	}
	d.queueDrop(f) // the record of what the name held before, if any
	if err := d.claim(f, info); err != nil {
		fd.Close()
		return err
	}
	if err := d.startLedger(f, info); err != nil {
		f.id = info.id
		d.releaseID(f.id, f)
		fd.Close()
		return err
	}
	rec := fileRecord{ID: info.id, Size: info.size, Serial: rand.Uint64()}
	if d.jnl != nil && info.size > 0 {
		err = d.jnl.settle(info.id, fd)
	}
	if err == nil {
		err = d.opens.record(d.db, fileKey(f.name, info.id.Ino), rec.marshal())
	}
	if err != nil {
		f.id = info.id
		d.releaseID(f.id, f)
		fd.Close()
		return fmt.Errorf("%w: record %s: %v", ErrStorage, f.name, err)
	}
	f.fd, f.id, f.serial, f.size, f.committed = fd, info.id, rec.Serial, info.size, info.size
	d.m.opened("record")
	return nil
}

// dirsCreated has the next commit fsync the directories whose entries an
// open changed.
func (d *Dir) dirsCreated(dirs []string) {
	if len(dirs) == 0 {
		return
	}
	d.pendMu.Lock()
	for _, dir := range dirs {
		d.dirSync[dir] = struct{}{}
	}
	d.pendMu.Unlock()
}

// claim checks that what f's name opened may be written as f: a regular
// file, not the state under another name, and not open under another name.
// Two names for one inode would each keep their own length, and a commit
// would record one of them too short. It then registers the inode as f's.
// A file with other hard links is written while it is not open under one
// of them: an operator's copy (cp -al) must not stop delivery.
func (d *Dir) claim(f *file, info fileInfo) error {
	switch {
	case !info.regular():
		return fmt.Errorf("%w: %s is not a regular file", ErrName, f.name)
	case info.nlink == 0:
		return fmt.Errorf("%w: %s was deleted while being opened", ErrStorage, f.name)
	case info.id.sameInode(d.stateDB) || info.id.sameInode(d.tree.state),
		info.nlink > 1 && d.inState(info.id):
		return fmt.Errorf("%w: %s is the processor's state under another name (a link)", ErrName, f.name)
	}
	k := [2]uint64{info.id.Dev, info.id.Ino}
	d.idMu.Lock()
	defer d.idMu.Unlock()
	if other := d.opened[k]; other != nil && other != f {
		return fmt.Errorf("%w: %s is the file %s (a hard link), already written under that name; remove one of the links", ErrName, f.name, other.name)
	}
	d.opened[k] = f
	return nil
}

// Offset returns the source offset after the last appended byte: where the
// stream's next data must start.
func (s *Stream) Offset() uint64 {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.at.Offset
}

// Committed returns the stream's durably committed source offset, and its
// digest there.
func (s *Stream) Committed() stream.Mark {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.done
}

// openRecords writes the records of files being opened as a group commit
// of its own: the opens of many sessions at once (a processor restarting
// under thousands of collectors opens every file again) share one
// transaction and one fsync, where each used to wait for its own; an open
// alone is written at once, without the delay of bbolt's Batch, which one
// session opening file after file would pay each time.
type openRecords struct {
	mu      sync.Mutex
	queue   []openRecord
	writing bool
}

type openRecord struct {
	key, val []byte
	done     chan error
}

// record writes key = val in bucketFiles and returns once it is durable.
// The first caller writes what is queued, round after round, until the
// queue is empty; the others wait for their round.
func (o *openRecords) record(db *bolt.DB, key, val []byte) error {
	done := make(chan error, 1)
	o.mu.Lock()
	o.queue = append(o.queue, openRecord{key, val, done})
	if o.writing {
		o.mu.Unlock()
		return <-done
	}
	o.writing = true
	for len(o.queue) > 0 {
		round := o.queue
		o.queue = nil
		o.mu.Unlock()
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketFiles)
			for _, r := range round {
				if err := b.Put(r.key, r.val); err != nil {
					return err
				}
			}
			return nil
		})
		for _, r := range round {
			r.done <- err
		}
		o.mu.Lock()
	}
	o.writing = false
	o.mu.Unlock()
	return <-done
}
