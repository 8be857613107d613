package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// EventsCapacity is the capacity of the channel returned by [Watcher.Events].
const EventsCapacity = 4096

// DefaultRescanInterval is the rescan interval used when
// [Config.RescanInterval] is zero.
const DefaultRescanInterval = 10 * time.Second

// Errors returned by [Watcher.Run].
var (
	// ErrClosed: the watcher was closed before Run's context was done.
	ErrClosed = errors.New("watch: watcher closed")
	// ErrRunning: Run was called more than once.
	ErrRunning = errors.New("watch: Run called more than once")
)

// Config configures a [Watcher].
type Config struct {
	// Dir is the directory to watch, recursively. It must exist and be a
	// directory when New is called. If it is a symlink, it is followed; no
	// other symlink is.
	Dir string
	// RescanInterval is how often a Rescan event is emitted as a safety net.
	// Zero means DefaultRescanInterval.
	RescanInterval time.Duration
	// Logger receives warnings; nil means slog.Default().
	Logger *slog.Logger
	// Pace, when positive, makes the watcher stop taking inotify events for
	// this long after a write event (having taken every event already
	// queued). fsnotify then waits to hand over its next event instead of
	// reading the next one, and the kernel merges a file's repeated write
	// events meanwhile: a writer doing one write(2) per line costs a few
	// hundred wake-ups a second instead of one per line, for at most Pace
	// of added latency.
	Pace time.Duration
}

// Watcher reports changes under a directory tree. Create it with [New], read
// [Watcher.Events] while [Watcher.Run] runs, then call [Watcher.Close].
type Watcher struct {
	dir      string
	interval time.Duration
	log      *slog.Logger
	fsw      *fsnotify.Watcher
	events   chan Event
	running  atomic.Bool
	overflow atomic.Bool  // events was full: a Rescan is owed; atomic for tests
	pace     atomic.Int64 // Config.Pace, or what SetPace set, in nanoseconds

	// The fields below belong to New, then to the goroutine calling Run.
	tree       tree
	lastRescan bool // the last event sent was a Rescan
	dirGone    bool // dir was removed or moved away
	dirID      fileID
	overflows  int // fsnotify queue overflows so far
}

// New validates cfg and starts watching cfg.Dir and every directory under
// it. Changes are queued by the kernel until Run is called.
func New(cfg Config) (*Watcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("watch: no source dir")
	}
	if cfg.RescanInterval < 0 {
		return nil, fmt.Errorf("watch: negative rescan interval %v", cfg.RescanInterval)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("watch: source dir %s: %w", cfg.Dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("watch: source dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("watch: source dir %s: not a directory", dir)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: source dir %s: %w", dir, err)
	}
	w := &Watcher{
		dir:      dir,
		interval: cfg.RescanInterval,
		log:      cfg.Logger,
		fsw:      fsw,
		events:   make(chan Event, EventsCapacity),
	}
	if w.interval == 0 {
		w.interval = DefaultRescanInterval
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.dirID = idOf(fi)
	w.pace.Store(int64(cfg.Pace))
	w.log = w.log.With("path", dir)
	w.tree = tree{fsw: fsw, log: w.log, watched: make(map[string]struct{})}
	w.tree.addAll(dir, nil)
	return w, nil
}

// Dir returns the absolute path of the watched directory, the prefix of
// every Event.Path.
func (w *Watcher) Dir() string { return w.dir }

// Events returns the channel of changes. It is closed when Run returns.
// Events are emitted only while Run runs.
func (w *Watcher) Events() <-chan Event { return w.events }

// Run reports changes on the Events channel until ctx is done, then returns
// nil. It never blocks on a full channel: it owes a single Rescan instead,
// and delivers it as soon as there is room. It also emits a Rescan every
// rescan interval, and after an inotify queue overflow. While a Rescan is
// unread, later events are folded into it.
//
// When a directory is created (or moved in) under Dir, Run watches it and
// its subdirectories and emits Create for the files already in them. When
// Dir itself disappears, Run logs a warning and carries on; a later rescan
// that finds it again watches it again.
//
// Run may be called once. It returns ErrClosed if Close is called first.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(w.events)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	pacing := false
	for {
		var owed chan<- Event
		if w.overflow.Load() {
			owed = w.events
		}
		fsEvents := w.fsw.Events
		if pacing {
			fsEvents = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case owed <- Event{Op: Rescan}:
			w.overflow.Store(false)
			w.lastRescan = true
		case <-tick.C:
			w.rescan()
		case <-pace.C:
			pacing = false
		case ev, ok := <-fsEvents:
			if !ok {
				return w.closed(ctx)
			}
			w.handle(ev)
			if pause := time.Duration(w.pace.Load()); pause > 0 && ev.Op.Has(fsnotify.Write) {
				if !w.takeQueued() {
					return w.closed(ctx)
				}
				pacing = true
				pace.Reset(pause)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return w.closed(ctx)
			}
			w.handleError(err)
		}
	}
}

// SetPace changes Config.Pace from the next write event on; the reader of
// the events knows best how fast they come (by the bytes each one brought).
func (w *Watcher) SetPace(d time.Duration) { w.pace.Store(int64(d)) }

// Close stops watching and waits for fsnotify's goroutine. It is safe to call
// more than once and while Run runs.
func (w *Watcher) Close() error {
	if err := w.fsw.Close(); err != nil {
		return fmt.Errorf("watch: close %s: %w", w.dir, err)
	}
	return nil
}

func (w *Watcher) closed(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return ErrClosed
}

// emit sends ev without blocking. Events are coalesced into a Rescan, which
// covers them because the consumer walks the tree after reading it, so
// after they happened:
//   - while the last event sent is a Rescan still in the channel (Run is
//     the only sender, so the last one sent is queued iff the channel is
//     not empty), ev is dropped;
//   - once the channel has been full, events are dropped until the owed
//     Rescan has been sent.
func (w *Watcher) emit(ev Event) {
	if w.lastRescan && len(w.events) > 0 {
		return
	}
	if w.overflow.Load() {
		select {
		case w.events <- Event{Op: Rescan}:
			w.overflow.Store(false)
			w.lastRescan = true
		default:
		}
		return
	}
	select {
	case w.events <- ev:
		w.lastRescan = ev.Op == Rescan
	default:
		w.overflow.Store(true)
	}
}

func (w *Watcher) handle(ev fsnotify.Event) {
	op := opOf(ev.Op)
	if op == 0 {
		return // Chmod only: content and names are unchanged
	}
	w.emit(Event{Path: ev.Name, Op: op})
	if op&(Remove|Rename) != 0 {
		w.tree.forget(ev.Name)
		if ev.Name == w.dir && !w.dirGone {
			w.dirGone = true
			w.log.Warn("source dir disappeared; waiting for a rescan to find it again")
		}
	}
	if op&Create != 0 {
		// Files may have been created in a new directory before its watch
		// was added: report those found now. Lstat: a symlink is not a dir.
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			w.tree.addAll(ev.Name, w.emit)
		}
	}
}

func (w *Watcher) handleError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.overflows++
		level := slog.LevelWarn
		if w.overflows > 1 {
			level = slog.LevelDebug
		}
		w.log.Log(context.Background(), level, "inotify queue overflowed; rescanning", "overflows", w.overflows)
		w.emit(Event{Op: Rescan})
		return
	}
	w.log.Warn("inotify error", "err", err)
}

// rescan runs on every tick: it re-watches Dir if it came back, retries
// directories that could not be watched, and asks the consumer to walk.
func (w *Watcher) rescan() {
	if !w.dirGone {
		// IN_DELETE_SELF does not come while something (a file still
		// being finished through its descriptor) keeps the old directory
		// alive: compare identities too.
		if fi, err := os.Stat(w.dir); err != nil || !fi.IsDir() || idOf(fi) != w.dirID {
			w.dirGone = true
			w.log.Warn("source dir disappeared; waiting for a rescan to find it again")
			w.tree.forget(w.dir)
		}
	}
	if w.dirGone {
		fi, err := os.Stat(w.dir)
		if err != nil || !fi.IsDir() {
			w.emit(Event{Op: Rescan})
			return
		}
		w.dirGone = false
		w.dirID = idOf(fi)
		w.log.Info("source dir found again")
		w.tree.addAll(w.dir, nil)
	} else if w.tree.incomplete {
		w.tree.incomplete = false
		w.tree.addAll(w.dir, nil)
	}
	w.emit(Event{Op: Rescan})
}

func opOf(o fsnotify.Op) Op {
	var op Op
	if o.Has(fsnotify.Write) {
		op |= Write
	}
	if o.Has(fsnotify.Create) {
		op |= Create
	}
	if o.Has(fsnotify.Remove) {
		op |= Remove
	}
	if o.Has(fsnotify.Rename) {
		op |= Rename
	}
	return op
}

// fileID identifies a directory across renames and re-creation.
type fileID struct{ dev, ino uint64 }

// takeQueued handles the events fsnotify has ready for us. It hands them
// over one at a time, so wait a moment for each next one. It reports false
// when fsnotify closed its channel.
func (w *Watcher) takeQueued() bool {
	const gap = 50 * time.Microsecond
	t := time.NewTimer(gap)
	defer t.Stop()
	for range maxTaken {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return false
			}
			w.handle(ev)
			t.Reset(gap)
		case <-t.C:
			return true
		}
	}
	return true
}

// maxTaken bounds the events taken at once before pacing again.
const maxTaken = 4096
