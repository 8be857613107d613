package target

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"thunder/internal/relpath"
	"thunder/internal/stream"
)

// Attach binds the stream to owner and returns where the collector must resume: the end of what
// was appended, or acked if the collector knows of more (the stream was
// delivered elsewhere, or this processor lost its state). A previous owner
// loses the stream: its appends fail with ErrNotOwner.
//
// A stream attached under a new name (the collector renamed what it is
// delivered as) continues there from the end of what the old name got; if
// some of that is not committed yet, Attach waits for the commit, so the
// new name's stream never depends on bytes that may still be rewound.
func (d *Dir) Attach(key stream.Key, n relpath.Name, acked stream.Mark, owner stream.Owner) (s *Stream, at, done stream.Mark, err error) {
	return d.attach(key, n, acked, owner, nil)
}

// Move moves the stream, which owner must still hold (else ErrNotOwner),
// to the name n, as Attach does for a stream attached under a new name:
// the new name continues from the end of what the old one got, once that
// is committed. The processor's dated layouts move streams at midnight.
func (s *Stream) Move(owner stream.Owner, n relpath.Name) (*Stream, error) {
	ns, _, _, err := s.d.attach(s.Key, n, stream.Mark{Unknown: true}, owner, s)
	return ns, err
}

// attach is Attach; with held set, only if the key's stream is still held
// by owner, checked under d.mu before anything changes (an Attach from a
// newer connection that takes the stream first wins).
func (d *Dir) attach(key stream.Key, n relpath.Name, acked stream.Mark, owner stream.Owner, held *Stream) (s *Stream, at, done stream.Mark, err error) {
	name := n.String()
	if n.IsZero() || owner == nil {
		return nil, at, done, fmt.Errorf("%w: attach without a name or an owner", ErrName)
	}
	d.mu.Lock()
	if held != nil && (d.streams[key] != held || !held.heldBy(owner)) {
		d.mu.Unlock()
		return nil, at, done, ErrNotOwner
	}
	s, err = d.settledLocked(key, name)
	if err != nil {
		d.mu.Unlock()
		return nil, at, done, err
	}
	if s == nil || s.Name != name {
		if s, err = d.bindLocked(key, name, s); err != nil {
			d.mu.Unlock()
			return nil, at, done, err
		}
	}
	// The owner is set before d.mu is released: another Attach of the key
	// must not rebind it in between and leave this caller an orphan.
	defer d.mu.Unlock()
	delete(d.forget, key) // attached again: its record stays
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if at, moved := s.at.Resume(acked); moved && (s.at == s.done || acked.Offset > s.at.Offset) {
		// Bytes below acked are durable elsewhere: start the stream there,
		// with the collector's digest of them (or take the collector's
		// digest where ours is unknown); the next commit records it.
		s.at, s.done = at, at
		f.touched[s] = struct{}{}
		if !f.dirty {
			f.dirty = true
			defer d.markDirty(f)
		}
	}
	s.owner = owner
	return s, s.at, s.done, nil
}

// heldBy reports whether owner holds s.
func (s *Stream) heldBy(owner stream.Owner) bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.owner == owner
}

// renameTimeout bounds how long Attach waits for a renamed stream's
// uncommitted bytes to be committed or rewound.
const renameTimeout = 30 * time.Second

// settledLocked returns the stream's in-memory state for key; when it is
// bound to another name with uncommitted bytes, it first takes the stream
// from its owner and waits until a commit settles them. d.mu is held.
func (d *Dir) settledLocked(key stream.Key, name string) (*Stream, error) {
	deadline := time.Now().Add(renameTimeout)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if d.closed {
			return nil, errors.New("target: closed")
		}
		s := d.streams[key]
		if s == nil || s.Name == name {
			return s, nil
		}
		s.f.mu.Lock()
		s.owner = nil // its appends stop, so the stream settles and stays so
		pending := s.at != s.done
		s.f.mu.Unlock()
		if !pending {
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: stream %s renamed to %s: its bytes in %s are still not committed after %v", ErrStorage, key, name, s.Name, renameTimeout)
		}
		if timer == nil {
			timer = time.AfterFunc(renameTimeout, d.broadcastSettled)
		}
		d.settled.Wait()
	}
}

// broadcastSettled wakes Attach calls waiting for streams to settle.
func (d *Dir) broadcastSettled() {
	d.mu.Lock()
	d.settled.Broadcast()
	d.mu.Unlock()
}

// bindLocked makes the in-memory stream for key at name, replacing prev
// (bound to another name, settled) if any. d.mu is held.
func (d *Dir) bindLocked(key stream.Key, name string, prev *Stream) (*Stream, error) {
	var rec streamRecord
	err := d.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStreams).Get(streamKey(key))
		if v == nil {
			return nil
		}
		var err error
		rec, err = unmarshalStream(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: read stream %s: %v", ErrStorage, key, err)
	}
	start, lines := stream.Mark{Offset: rec.Committed, Digest: rec.Digest, Unknown: rec.NoDigest}, rec.Lines
	if prev != nil {
		// Follow the rename without resending what the old name got.
		prev.f.mu.Lock()
		if prev.done.Offset > start.Offset {
			start, lines = prev.done, prev.doneLines
		}
		prev.f.mu.Unlock()
		d.unbindLocked(prev)
		d.letGoLocked(prev.f)
	}
	f := d.files[name]
	if f == nil {
		f = &file{name: name, touched: make(map[*Stream]struct{}), streams: make(map[*Stream]struct{}), committed: -1}
		d.files[name] = f
	}
	s := &Stream{Key: key, Name: name, f: f, at: start, done: start, lines: lines, doneLines: lines, d: d}
	d.streams[key] = s
	f.mu.Lock()
	f.streams[s] = struct{}{}
	f.mu.Unlock()
	return s, nil
}

// Detach releases the stream if owner still holds it. A stream with
// nothing uncommitted leaves memory at once; otherwise the commit that
// records it lets it go.
func (s *Stream) Detach(owner stream.Owner) { s.release(owner, false) }

// Forget releases the stream, if owner still holds it, and deletes its
// record at the next commit: the collector finished and deleted its file.
func (s *Stream) Forget(owner stream.Owner) { s.release(owner, true) }

// release is Detach, and Forget with forget. The owner check and the
// queued delete happen under d.mu, so an Attach by another owner either
// comes first (and this is a no-op) or after (and takes the delete back).
func (s *Stream) release(owner stream.Owner, forget bool) {
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.owner != owner || owner == nil {
		return // another connection took the stream over; it decides
	}
	s.owner = nil
	if forget {
		d.forget[s.Key] = struct{}{}
		defer d.notify(false)
	}
	d.evictLocked(s)
}

// evictLocked drops s from memory if no connection holds it and it has
// nothing uncommitted, and closes its file once no stream needs it. d.mu and
// s.f.mu are held.
func (d *Dir) evictLocked(s *Stream) {
	f := s.f
	if _, pending := f.touched[s]; pending || s.at != s.done {
		return
	}
	if d.streams[s.Key] == s {
		if s.owner != nil {
			return
		}
		delete(d.streams, s.Key)
		if _, ok := d.forget[s.Key]; ok {
			d.notify(false) // its record can go now
		}
	}
	delete(f.streams, s) // also a stream renamed away, once settled
	d.letGoFileLocked(f)
}

// letGoLocked is letGoFileLocked for a file whose lock is not held. d.mu is
// held.
func (d *Dir) letGoLocked(f *file) {
	f.mu.Lock()
	d.letGoFileLocked(f)
	f.mu.Unlock()
}

// letGoFileLocked forgets f once no stream needs it and all in it is
// committed. d.mu and f.mu are held.
func (d *Dir) letGoFileLocked(f *file) {
	if len(f.streams) == 0 && len(f.touched) == 0 && !f.dirty && d.files[f.name] == f {
		d.closeLocked(f) // everything in it is committed
		delete(d.files, f.name)
	}
}

// closeLocked closes f's descriptor, if open, with everything in it
// committed, and drops its record at the next commit: the processor no
// longer tracks the file, so nothing may ever be cut by that record (after
// a crash, recovery would also have to prove the identity). The next append
// opens the name afresh. f.mu is held.
func (d *Dir) closeLocked(f *file) {
	d.idleCloseLocked(f)
	d.queueDrop(f)
}

// idleCloseLocked closes f's descriptor, keeping its record, and with it
// f's claim on the inode: while a record names an inode, no other name may
// write it (recovery would cut it by the older record). The next open of
// the name reuses the record if it finds the same file, unchanged. f.mu is
// held.
func (d *Dir) idleCloseLocked(f *file) {
	if f.fd == nil {
		return
	}
	d.closeFD(f.fd)
	f.fd = nil
}

// queueDrop has the next commit delete f's record, and gives up f's claim
// on its inode. f.mu is held.
func (d *Dir) queueDrop(f *file) {
	if f.committed < 0 {
		d.releaseID(f.id, f)
		return
	}
	f.committed = -1
	d.releaseID(f.id, f)
	d.pendMu.Lock()
	d.drops = append(d.drops, drop{key: fileKey(f.name, f.id.Ino), serial: f.serial})
	d.pendMu.Unlock()
}

// releaseID forgets inode id as f's, unless f has it open again. f.mu is
// held.
func (d *Dir) releaseID(id fileID, f *file) {
	if f.fd != nil && f.id.sameInode(id) {
		return
	}
	k := [2]uint64{id.Dev, id.Ino}
	d.idMu.Lock()
	if d.opened[k] == f {
		delete(d.opened, k)
	}
	d.idMu.Unlock()
}

// drop is a file record to delete if it is still the one with serial.
type drop struct {
	key    []byte
	serial uint64
}

// unbindLocked removes s from memory. d.mu is held.
func (d *Dir) unbindLocked(s *Stream) {
	delete(d.streams, s.Key)
	s.f.mu.Lock()
	delete(s.f.streams, s)
	s.owner = nil
	s.f.mu.Unlock()
}
