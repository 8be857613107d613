package watch

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"

	"github.com/fsnotify/fsnotify"
)

// tree keeps the set of directories with an inotify watch. It belongs to
// one goroutine at a time (New, then Run).
type tree struct {
	fsw     *fsnotify.Watcher
	log     *slog.Logger
	watched map[string]struct{}

	incomplete   bool // a watch failed with ENOSPC: rescans retry
	warnedLimit  bool
	warnedOthers bool
}

// addAll watches root, if it is a directory, and every directory under it,
// without following symlinks. If emit is not nil, it reports the regular
// files and directories found under root as Create: they may predate the
// watch on their directory.
func (t *tree) addAll(root string, emit func(Event)) {
	_ = walkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Vanished entries are reported by their parent's watch;
			// unreadable ones are found by add or by the consumer's Walk.
			return nil
		}
		if d.IsDir() {
			t.add(p)
		}
		if emit != nil && p != root && (d.IsDir() || d.Type().IsRegular()) {
			emit(Event{Path: p, Op: Create})
		}
		return nil
	}) // errors are ignored above
}

func (t *tree) add(dir string) {
	if _, ok := t.watched[dir]; ok {
		return
	}
	err := t.fsw.Add(dir)
	switch {
	case err == nil:
		t.watched[dir] = struct{}{}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, fsnotify.ErrClosed):
		// Gone already, or shutting down.
	case errors.Is(err, syscall.ENOSPC):
		t.incomplete = true
		if !t.warnedLimit {
			t.warnedLimit = true
			t.log.Warn("inotify watch limit reached; unwatched directories are covered by the periodic rescan only; raise sysctl fs.inotify.max_user_watches",
				"dir", dir, "err", err)
		}
	default:
		level := slog.LevelWarn
		if t.warnedOthers {
			level = slog.LevelDebug
		}
		t.warnedOthers = true
		t.log.Log(context.Background(), level, "cannot watch directory; covered by the periodic rescan only", "dir", dir, "err", err)
	}
}

// forget drops the watches on dir and every directory under it, after dir
// was removed or moved away. A moved directory keeps its inotify watches,
// which would report the old names; its new name arrives as Create.
func (t *tree) forget(dir string) {
	if _, ok := t.watched[dir]; !ok {
		return
	}
	prefix := dir + "/"
	for p := range t.watched {
		if p == dir || strings.HasPrefix(p, prefix) {
			delete(t.watched, p)
			_ = t.fsw.Remove(p) // fsnotify may have dropped it already
		}
	}
}
