package target

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

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
	cfg  Config
	log  *slog.Logger
	root *os.Root
	db   *bolt.DB

	commitMu sync.Mutex // serialises commits, Reopen and Close
	timings  Timings    // of the last commit; guarded by commitMu

	mu      sync.Mutex
	files   map[string]*file
	streams map[stream.Key]*Stream
	closed  bool

	pendMu  sync.Mutex
	dirty   map[*file]struct{}
	dirSync map[string]struct{} // directories whose entries changed since the last commit
	forget  []stream.Key        // stream records to delete at the next commit

	dirtyBytes atomic.Int64
}

// file is one target file. Its fields are guarded by mu.
type file struct {
	mu        sync.Mutex
	name      string
	fd        *os.File // nil until the first append, and after Reopen
	ino       uint64
	size      int64 // bytes in the file as written through fd
	committed int64 // size recorded by the last commit for ino
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
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("target dir: %w", err)
	}
	if err := root.Mkdir(relpath.StateDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		root.Close()
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	dbPath := path.Join(cfg.Dir, relpath.StateDir, stateFile)
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		root.Close()
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open state %s: in use by another processor", dbPath)
		}
		return nil, fmt.Errorf("open state %s: %w", dbPath, err)
	}
	if err := initBuckets(db); err != nil {
		db.Close()
		root.Close()
		return nil, fmt.Errorf("open state %s: %w", dbPath, err)
	}
	d := &Dir{
		cfg:     cfg,
		log:     cfg.Logger,
		root:    root,
		db:      db,
		files:   make(map[string]*file),
		streams: make(map[stream.Key]*Stream),
		dirty:   make(map[*file]struct{}),
		dirSync: make(map[string]struct{}),
	}
	if err := d.recover(); err != nil {
		d.db.Close()
		d.root.Close()
		return nil, err
	}
	return d, nil
}

// Attach binds the stream to owner (any comparable token, one per
// connection) and returns where the collector must resume: the end of what
// was appended, or acked if the collector knows of more (the stream was
// delivered elsewhere, or this processor lost its state). A previous owner
// loses the stream: its appends fail with ErrNotOwner.
func (d *Dir) Attach(key stream.Key, name string, acked uint64, owner any) (s *Stream, offset, committed uint64, err error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, 0, 0, errors.New("target: closed")
	}
	s = d.streams[key]
	if s == nil || s.Name != name {
		if s != nil {
			// The collector renamed what the stream is delivered as; follow it.
			d.unbindLocked(s)
		}
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
			d.mu.Unlock()
			return nil, 0, 0, fmt.Errorf("%w: read stream %s: %v", ErrStorage, key, err)
		}
		f := d.files[name]
		if f == nil {
			f = &file{name: name, touched: make(map[*Stream]struct{}), streams: make(map[*Stream]struct{}), committed: -1}
			d.files[name] = f
		}
		s = &Stream{Key: key, Name: name, f: f, offset: rec.Committed, committed: rec.Committed}
		d.streams[key] = s
		f.mu.Lock()
		f.streams[s] = struct{}{}
		f.mu.Unlock()
	}
	d.mu.Unlock()

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
	if s.owner != nil || s.offset != s.committed || d.streams[s.Key] != s {
		return
	}
	if _, pending := f.touched[s]; pending {
		return
	}
	delete(d.streams, s.Key)
	delete(f.streams, s)
	if len(f.streams) == 0 && !f.dirty && d.files[f.name] == f {
		if f.fd != nil {
			_ = f.fd.Close() // everything in it is committed
			f.fd = nil
		}
		delete(d.files, f.name)
	}
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
			if terr := f.fd.Truncate(f.size); terr != nil {
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
// directories. f.mu is held.
func (d *Dir) openLocked(f *file) error {
	created, err := d.mkdirs(path.Dir(f.name))
	if err != nil {
		return err
	}
	// O_NONBLOCK: a FIFO at the name fails instead of blocking; it has no
	// effect on regular files.
	fd, err := d.root.OpenFile(f.name, os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		fd, err = d.root.OpenFile(f.name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, d.cfg.FileMode)
		if err == nil {
			created = append(created, path.Dir(f.name))
		}
	}
	if err != nil {
		return classify(f.name, err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return fmt.Errorf("%w: stat %s: %v", ErrStorage, f.name, err)
	}
	if !st.Mode().IsRegular() {
		fd.Close()
		return fmt.Errorf("%w: %s is not a regular file", ErrName, f.name)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	if ino != f.ino || f.committed < 0 {
		// Record the file before the first write: a crash before the next
		// commit must cut it back to where we found it, since the streams
		// writing to it resend from their committed offsets.
		rec := fileRecord{Ino: ino, Size: st.Size()}
		err := d.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketFiles).Put(fileKey(f.name, ino), rec.marshal())
		})
		if err != nil {
			fd.Close()
			return fmt.Errorf("%w: record %s: %v", ErrStorage, f.name, err)
		}
		f.committed = st.Size()
	}
	f.fd, f.ino, f.size = fd, ino, st.Size()
	if len(created) > 0 {
		d.pendMu.Lock()
		for _, dir := range created {
			d.dirSync[dir] = struct{}{}
		}
		d.pendMu.Unlock()
	}
	return nil
}

// mkdirs creates dir and its parents inside the root and returns the parents
// whose entries changed, which the next commit fsyncs.
func (d *Dir) mkdirs(dir string) (changed []string, err error) {
	if dir == "." {
		return nil, nil
	}
	if st, err := d.root.Stat(dir); err == nil {
		if !st.IsDir() {
			return nil, fmt.Errorf("%w: %s is not a directory", ErrName, dir)
		}
		return nil, nil
	}
	changed, err = d.mkdirs(path.Dir(dir))
	if err != nil {
		return nil, err
	}
	if err := d.root.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, classify(dir, err)
	}
	return append(changed, path.Dir(dir)), nil
}

// classify wraps an error opening a target path: a path that os.Root refuses
// (a symlink leading out) or that has a file in the way is a name problem;
// everything else is storage.
func classify(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && (errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.ELOOP) || pe.Err.Error() == "path escapes from parent") {
		return fmt.Errorf("%w: %s: %v", ErrName, name, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrStorage, name, err)
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

// CloseIdle closes the descriptors of the files appended to least recently
// and with nothing uncommitted, once more than max are open, down to 90% of
// max. The next append to such a file opens its name again. It returns how
// many it closed.
func (d *Dir) CloseIdle(max int) int {
	d.commitMu.Lock() // a commit may be syncing a descriptor it snapshotted
	defer d.commitMu.Unlock()
	d.mu.Lock()
	files := make([]*file, 0, len(d.files))
	for _, f := range d.files {
		files = append(files, f)
	}
	d.mu.Unlock()
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
			_ = f.fd.Close() // everything in it is committed
			f.fd = nil
			open--
			closed++
		}
		f.mu.Unlock()
	}
	return closed
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
