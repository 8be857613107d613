package target

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"thunder/internal/relpath"
	"thunder/internal/stream"
)

// Errors returned by Append and Attach.
var (
	// ErrNotOwner means another owner attached the stream, or a storage
	// failure rewound it; the caller must re-attach.
	ErrNotOwner = fmt.Errorf("target: %w", stream.ErrNotOwner)
	// ErrOffset means data did not start where the stream ends.
	ErrOffset = fmt.Errorf("target: %w", stream.ErrOffset)
	// ErrStorage means the target file could not be written or synced
	// (disk full, I/O error, permissions). Nothing past the committed length
	// is acknowledged; the collector resends it.
	ErrStorage = errors.New("target: storage error")
	// ErrName means the name cannot be a target file (a directory or a
	// non-regular file is in the way, or it leads out of the target dir).
	ErrName = fmt.Errorf("target: %w", stream.ErrName)
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
	// Registerer receives the commit metrics (nil: none).
	Registerer prometheus.Registerer
	// CommitInterval bounds how long appended data waits for its group
	// commit (Run); CommitBytes pending start one at once.
	CommitInterval time.Duration
	CommitBytes    int64
	// MaxOpenFiles bounds open target files: past it, Run closes those
	// written least recently (they are opened again when written).
	MaxOpenFiles int
	// JournalMinFiles, when positive, has a commit that writes at least
	// that many files on the target's file system copy their new bytes
	// into a journal instead of syncing them (journal.go). 0: off.
	// Recovery replays a journal left by an earlier run either way.
	JournalMinFiles int
}

// Defaults of Config.
const (
	DefaultCommitInterval = 5 * time.Millisecond
	DefaultCommitBytes    = 8 << 20
	DefaultMaxOpenFiles   = 4096
)

// Dir is the processor's target directory. It is safe for concurrent use.
//
// Lock order: commitMu, then mu, then a file's mu, then pendMu (a leaf).
type Dir struct {
	cfg     Config
	log     *slog.Logger
	tree    tree
	db      *bolt.DB
	stateDB fileID // the state store itself: no name may lead to it
	// genFile holds the commits the state store counts, once that is
	// durable there (generation.go); guarded by commitMu.
	genFile   *os.File
	genFailed bool
	fsDev     uint64 // the target directory's file system
	// devsBefore are the device numbers fsDev had at earlier starts
	// (devnum.go).
	devsBefore []uint64
	syncfs     bool     // commits may use syncfs(2) for it (sync.go)
	jnl        *journal // commits of many files journal them (journal.go); nil if !syncfs
	jnlNext    uint64   // the journal's first segment, once recovery replayed the old ones
	jnlMin     int      // files a commit writes to journal them

	commitMu sync.Mutex // serialises commits, Reopen and Close
	health   health     // of the last commit; guarded by commitMu
	timings  timings    // of the last commit; guarded by commitMu
	m        *metrics

	kick chan struct{} // data appended: a commit is due
	// dueSince is when the first append since the last commit's start
	// asked for one (unix ns, 0: none): the interval counts from then,
	// so data appended while a commit runs does not wait for it and a
	// whole interval more.
	dueSince atomic.Int64
	full     chan struct{} // CommitBytes pending: commit now

	mu      sync.Mutex
	files   map[string]*file
	streams map[stream.Key]*Stream
	closed  bool
	settled *sync.Cond // on mu: broadcast when a commit or rewind settled streams
	// forget holds the streams whose records a commit deletes once they
	// left memory (Forget); attaching one again takes it out.
	forget map[stream.Key]struct{}

	idMu   sync.Mutex          // a leaf
	opened map[[2]uint64]*file // (dev, ino) of every open target file

	pendMu  sync.Mutex
	dirty   map[*file]struct{}
	dirSync map[string]struct{} // directories whose entries changed since the last commit
	drops   []drop              // file records to delete at the next commit

	dirtyBytes    atomic.Int64
	behindBytes   atomic.Int64 // appended to files without a descriptor (behind.go)
	behindMu      sync.Mutex
	behindWritten chan struct{} // closed when a commit wrote buffered bytes; guarded by behindMu
	openFDs       atomic.Int64  // target file descriptors open (budget.go)
	roomMu        sync.Mutex    // one makeRoom at a time
	reserve       reserve       // descriptors given up for commits when the process runs out
	opens         openRecords   // the records of files being opened (append.go)
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
	syncing   bool      // a commit's snapshot holds fd: it must not be closed
	fsync     bool      // a syncfs failed while fd was open: only fd's own fsync reports fd's errors (sync.go)
	broken    error     // a write could not be undone or a sync failed: rewind at commit
	behind    []byte    // appended while f had no descriptor, written by the next commit (behind.go)
	unsynced  bool      // written through a descriptor closed since: synced without it (behind.go)
	touched   map[*Stream]struct{}
	streams   map[*Stream]struct{} // every in-memory stream bound to this file

	ledgerState // fd's ledger entry (ledger.go)
}

// Stream is a processor's view of one collector stream: where its data ends
// in the target file. Its mutable fields are guarded by its file's mu.
type Stream struct {
	Key  stream.Key
	Name string

	f         *file
	at        stream.Mark // after the last appended byte
	done      stream.Mark // durably recorded
	lines     uint64      // lines appended, of them doneLines recorded
	doneLines uint64
	owner     stream.Owner
	d         *Dir
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
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	if cfg.CommitBytes <= 0 {
		cfg.CommitBytes = DefaultCommitBytes
	}
	if cfg.MaxOpenFiles <= 0 {
		cfg.MaxOpenFiles = DefaultMaxOpenFiles
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
	tr, err := newTree(root)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("target dir: %w", err)
	}
	d := &Dir{
		cfg:           cfg,
		log:           cfg.Logger,
		tree:          tr,
		files:         make(map[string]*file),
		streams:       make(map[stream.Key]*Stream),
		forget:        make(map[stream.Key]struct{}),
		opened:        make(map[[2]uint64]*file),
		dirty:         make(map[*file]struct{}),
		dirSync:       make(map[string]struct{}),
		kick:          make(chan struct{}, 1),
		full:          make(chan struct{}, 1),
		behindWritten: make(chan struct{}),
		m:             newMetrics(cfg.Registerer),
	}
	d.settled = sync.NewCond(&d.mu)
	d.reserve.take(int(root.Fd()))
	if info, err := statFD(int(root.Fd())); err == nil {
		d.fsDev, d.syncfs = info.id.Dev, treeSyncfs && syncfsReportsErrors(int(root.Fd()))
	}
	if err := d.openState(); err != nil {
		d.reserve.release()
		d.tree.close()
		return nil, err
	}
	if err := d.renumber(); err != nil {
		d.db.Close()
		d.reserve.release()
		d.tree.close()
		return nil, fmt.Errorf("state: renumber the records of %s: %w", cfg.Dir, err)
	}
	if err := d.recover(); err != nil {
		d.genFile.Close()
		d.db.Close()
		d.reserve.release()
		d.tree.close()
		return nil, err
	}
	if jmin := cmp.Or(journalMin, cfg.JournalMinFiles); d.syncfs && jmin > 0 {
		if d.jnl, err = newJournal(d, d.jnlNext); err != nil {
			d.log.Warn("journal unavailable; commits sync their files", "err", err)
		}
		d.jnlMin = jmin
	}
	return d, nil
}

// openState opens the state store in relpath.StateDir, which must be a
// directory of its own, not a link to one.
func (d *Dir) openState() error {
	state, err := d.tree.makeStateDir(relpath.StateDir)
	if err != nil {
		return err
	}
	d.tree.state = state
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
	dbID, err := d.tree.stateFileID(path.Join(relpath.StateDir, stateFile))
	if err != nil {
		db.Close()
		return fmt.Errorf("state %s: %w", dbPath, err)
	}
	d.db, d.stateDB = db, dbID
	return nil
}

func (d *Dir) markDirty(f *file) {
	d.pendMu.Lock()
	d.dirty[f] = struct{}{}
	d.pendMu.Unlock()
}

// DirtyBytes returns the bytes appended since the last commit started.
func (d *Dir) DirtyBytes() int64 { return d.dirtyBytes.Load() }
