package target

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"thunder/internal/relpath"
	"thunder/internal/stream"
)

// Errors returned by Append and Attach.
var (
	// ErrNotOwner means another connection attached the stream, or a
	// storage failure rewound it; the caller must re-attach.
	ErrNotOwner = errors.New("target: stream is not attached to this connection")
	// ErrOffset means data did not start where the stream ends.
	ErrOffset = errors.New("target: data does not start at the stream's offset")
	// ErrStorage means the target file could not be written or synced
	// (disk full, I/O error, permissions). Nothing past the committed length
	// is acknowledged; the collector resends it.
	ErrStorage = errors.New("target: storage error")
	// ErrName means the name cannot be a target file (a directory or a
	// non-regular file is in the way, or it leads out of the target dir).
	ErrName = errors.New("target: unusable target name")
)

// stateFile is the state store inside relpath.StateDir.
const stateFile = "state.db"

// Config configures a Dir.
type Config struct {
	// Dir is the target directory. It must exist.
	Dir string
	// FileMode is the permission of created target files (default 0644).
	FileMode os.FileMode
	// Logger receives recovery and storage events (nil: slog.Default()).
	Logger *slog.Logger
}

// Dir is the processor's target directory. It is safe for concurrent use.
//
// Lock order: commitMu, then mu, then a file's mu, then pendMu (a leaf).
type Dir struct {
	cfg     Config
	log     *slog.Logger
	tree    tree
	db      *bolt.DB
	stateDB fileID // the state store itself: no name may lead to it

	commitMu sync.Mutex // serialises commits, Reopen and Close
	timings  Timings    // of the last commit; guarded by commitMu

	mu      sync.Mutex
	files   map[string]*file
	streams map[stream.Key]*Stream
	closed  bool
	settled *sync.Cond // on mu: broadcast when a commit or rewind settled streams

	idMu   sync.Mutex          // a leaf
	opened map[[2]uint64]*file // (dev, ino) of every open target file

	pendMu  sync.Mutex
	dirty   map[*file]struct{}
	dirSync map[string]struct{} // directories whose entries changed since the last commit
	forget  []stream.Key        // stream records to delete at the next commit
	drops   []drop              // file records to delete at the next commit

	dirtyBytes atomic.Int64
}

// file is one target file. Its fields are guarded by mu.
type file struct {
	mu        sync.Mutex
	name      string
	fd        *os.File // nil until the first append, and after Reopen
	id        fileID   // of fd
	serial    uint64   // of fd's record
	size      int64    // bytes in the file as written through fd
	committed int64    // size in f's record (of f.id); -1 if it has none
	dirty     bool
	last      time.Time // last append, for CloseIdle
	reopen    bool      // the next commit closes fd so the name is opened afresh
	broken    error     // a write could not be undone or a sync failed: rewind at commit
	touched   map[*Stream]struct{}
	streams   map[*Stream]struct{} // every in-memory stream bound to this file
}

// Stream is a processor's view of one collector stream: where its data ends
// in the target file. Its mutable fields are guarded by its file's mu.
type Stream struct {
	Key  stream.Key
	Name string

	f         *file
	offset    uint64 // source offset after the last appended byte
	committed uint64 // source offset durably recorded
	owner     any
}

// Open opens the target directory, its state store, and cuts every target
// file back to its committed length.
func Open(cfg Config) (*Dir, error) {
	if cfg.FileMode == 0 {
		cfg.FileMode = 0o644
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("target dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("target dir %s: not a directory", cfg.Dir)
	}
	root, err := os.Open(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("target dir: %w", err)
	}
	d := &Dir{
		cfg:     cfg,
		log:     cfg.Logger,
		tree:    tree{root: root},
		files:   make(map[string]*file),
		streams: make(map[stream.Key]*Stream),
		opened:  make(map[[2]uint64]*file),
		dirty:   make(map[*file]struct{}),
		dirSync: make(map[string]struct{}),
	}
	d.settled = sync.NewCond(&d.mu)
	if err := d.openState(); err != nil {
		root.Close()
		return nil, err
	}
	if err := d.recover(); err != nil {
		d.db.Close()
		root.Close()
		return nil, err
	}
	return d, nil
}

// openState opens the state store in relpath.StateDir, which must be a
// directory of its own, not a link to one.
func (d *Dir) openState() error {
	rootFD := int(d.tree.root.Fd())
	if err := unix.Mkdirat(rootFD, relpath.StateDir, 0o700); err != nil && err != unix.EEXIST {
		return fmt.Errorf("create state dir: %w", err)
	}
	sfd, err := unix.Openat(rootFD, relpath.StateDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("state dir %s: %w (it must be a directory, not a link)", path.Join(d.cfg.Dir, relpath.StateDir), err)
	}
	info, err := statFD(sfd)
	unix.Close(sfd)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	d.tree.state = info.id
	dbPath := path.Join(d.cfg.Dir, relpath.StateDir, stateFile)
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("open state %s: in use by another processor", dbPath)
		}
		return fmt.Errorf("open state %s: %w", dbPath, err)
	}
	if err := initBuckets(db); err != nil {
		db.Close()
		return fmt.Errorf("open state %s: %w", dbPath, err)
	}
	// Its identity, looked at without following a link: no target name may
	// resolve to it.
	dbFD, err := unix.Openat(rootFD, path.Join(relpath.StateDir, stateFile), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	var dbInfo fileInfo
	if err == nil {
		dbInfo, err = statFD(dbFD)
		unix.Close(dbFD)
	}
	if err != nil {
		db.Close()
		return fmt.Errorf("state %s: %w", dbPath, err)
	}
	d.db, d.stateDB = db, dbInfo.id
	return nil
}

// Attach binds the stream to owner (any comparable token, one per
// connection) and returns where the collector must resume: the end of what
// was appended, or acked if the collector knows of more (the stream was
// delivered elsewhere, or this processor lost its state). A previous owner
// loses the stream: its appends fail with ErrNotOwner.
//
// A stream attached under a new name (the collector renamed what it is
// delivered as) continues there from the end of what the old name got; if
// some of that is not committed yet, Attach waits for the commit, so the
// new name's stream never depends on bytes that may still be rewound.
func (d *Dir) Attach(key stream.Key, name string, acked uint64, owner any) (s *Stream, offset, committed uint64, err error) {
	d.mu.Lock()
	s, err = d.settledLocked(key, name)
	if err != nil {
		d.mu.Unlock()
		return nil, 0, 0, err
	}
	if s == nil || s.Name != name {
		if s, err = d.bindLocked(key, name, s); err != nil {
			d.mu.Unlock()
			return nil, 0, 0, err
		}
	}
	// The owner is set before d.mu is released: another Attach of the key
	// must not rebind it in between and leave this caller an orphan.
	defer d.mu.Unlock()
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if acked > s.offset {
		// Bytes below acked are durable elsewhere: start the stream there.
		s.offset, s.committed = acked, acked
		f.touched[s] = struct{}{}
		if !f.dirty {
			f.dirty = true
			defer d.markDirty(f)
		}
	}
	s.owner = owner
	return s, s.offset, s.committed, nil
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
		pending := s.offset != s.committed
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
	start := rec.Committed
	if prev != nil {
		// Follow the rename without resending what the old name got.
		prev.f.mu.Lock()
		start = max(start, prev.committed)
		prev.f.mu.Unlock()
		d.unbindLocked(prev)
		d.letGoLocked(prev.f)
	}
	f := d.files[name]
	if f == nil {
		f = &file{name: name, touched: make(map[*Stream]struct{}), streams: make(map[*Stream]struct{}), committed: -1}
		d.files[name] = f
	}
	s := &Stream{Key: key, Name: name, f: f, offset: start, committed: start}
	d.streams[key] = s
	f.mu.Lock()
	f.streams[s] = struct{}{}
	f.mu.Unlock()
	return s, nil
}

// Detach releases the stream if owner still holds it. A stream with
// nothing uncommitted leaves memory at once; otherwise the commit that
// records it lets it go.
func (d *Dir) Detach(s *Stream, owner any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.owner != owner {
		return
	}
	s.owner = nil
	d.evictLocked(s)
}

// Forget releases the stream and deletes its record at the next commit: the
// collector finished and deleted its file.
func (d *Dir) Forget(s *Stream, owner any) {
	s.f.mu.Lock()
	owned := s.owner == owner && owner != nil
	s.f.mu.Unlock()
	if !owned {
		return // another connection took the stream over; it decides
	}
	d.Detach(s, owner)
	d.pendMu.Lock()
	d.forget = append(d.forget, s.Key)
	d.pendMu.Unlock()
}

// evictLocked drops s from memory if no connection holds it and it has
// nothing uncommitted, and closes its file once no stream needs it. d.mu and
// s.f.mu are held.
func (d *Dir) evictLocked(s *Stream) {
	f := s.f
	if _, pending := f.touched[s]; pending || s.offset != s.committed {
		return
	}
	if d.streams[s.Key] == s {
		if s.owner != nil {
			return
		}
		delete(d.streams, s.Key)
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
	_ = f.fd.Close()
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

func (d *Dir) markDirty(f *file) {
	d.pendMu.Lock()
	d.dirty[f] = struct{}{}
	d.pendMu.Unlock()
}

// DirtyBytes returns the bytes appended since the last commit started.
func (d *Dir) DirtyBytes() int64 { return d.dirtyBytes.Load() }

// Append writes p, the lines for source offsets [offset, end), at the end of
// the stream's target file. p is written with one write(2) under the file's
// lock, so lines of different streams never interleave; a failed write is cut
// back so no partial line stays in the file.
func (s *Stream) Append(d *Dir, owner any, offset, end uint64, p []byte) error {
	f := s.f
	f.mu.Lock()
	if s.owner != owner || s.owner == nil {
		f.mu.Unlock()
		return ErrNotOwner
	}
	if offset != s.offset {
		f.mu.Unlock()
		return fmt.Errorf("%w: got %d, stream is at %d", ErrOffset, offset, s.offset)
	}
	if f.broken != nil {
		err := f.broken
		f.mu.Unlock()
		return fmt.Errorf("%w: %s: %v", ErrStorage, f.name, err)
	}
	if f.fd == nil {
		if err := d.openLocked(f); err != nil {
			f.mu.Unlock()
			return err
		}
	}
	n, err := f.fd.Write(p)
	if err != nil {
		if n > 0 {
			// Cut what this write left, from what the file holds now
			// (someone may have truncated it since we last looked).
			if terr := cutWrite(f.fd, n); terr != nil {
				f.broken = terr
			}
		}
		f.mu.Unlock()
		return fmt.Errorf("%w: write %s: %v", ErrStorage, f.name, err)
	}
	f.size += int64(n)
	f.last = time.Now()
	s.offset = end
	f.touched[s] = struct{}{}
	wasDirty := f.dirty
	f.dirty = true
	f.mu.Unlock()
	d.dirtyBytes.Add(int64(n))
	if !wasDirty {
		d.markDirty(f)
	}
	return nil
}

// openLocked opens f's file for appending, creating it and its parent
// directories, and records it before the first write: a crash before the
// next commit must cut it back to where we found it, since the streams
// writing to it resend from their committed offsets. f.mu is held.
func (d *Dir) openLocked(f *file) error {
	fd, created, err := d.tree.openFile(f.name, unix.O_APPEND, true, d.cfg.FileMode)
	if err != nil {
		return err
	}
	info, err := identify(fd)
	if err != nil {
		fd.Close()
		return fmt.Errorf("%w: stat %s: %v", ErrStorage, f.name, err)
	}
	if f.committed >= 0 && info.id.sameFile(f.id) && info.size == f.committed && info.nlink > 0 {
		// Closed while idle, and nothing changed it since: its record, and
		// its claim on the inode, hold.
		f.fd, f.size = fd, info.size
		d.dirsCreated(created)
		return nil
	}
	d.queueDrop(f) // the record of what the name held before, if any
	if err := d.claim(f, info); err != nil {
		fd.Close()
		return err
	}
	rec := fileRecord{ID: info.id, Size: info.size, Serial: rand.Uint64()}
	err = d.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).Put(fileKey(f.name, info.id.Ino), rec.marshal())
	})
	if err != nil {
		f.id = info.id
		d.releaseID(f.id, f)
		fd.Close()
		return fmt.Errorf("%w: record %s: %v", ErrStorage, f.name, err)
	}
	f.fd, f.id, f.serial, f.size, f.committed = fd, info.id, rec.Serial, info.size, info.size
	d.dirsCreated(created)
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
	return s.offset
}

// Committed returns the stream's durably committed source offset.
func (s *Stream) Committed() uint64 {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.committed
}

// Timings is how long the parts of a commit took.
type Timings struct {
	Sync   time.Duration // fsync of the touched files and directories
	Record time.Duration // the state transaction
}

// LastTimings returns the timings of the last commit that did anything.
func (d *Dir) LastTimings() Timings {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	return d.timings
}
