// Package watch tells the collector which files under a source directory may
// have changed, using inotify (through fsnotify) on the directory and every
// subdirectory, plus a periodic rescan as a safety net.
//
// Invariant: a change is never lost silently. Every change under the
// directory is either reported as its own [Event] or covered by a later
// [Rescan] event, after which the consumer walks the whole directory (with
// [Walk]). The watcher never blocks on a slow consumer: when the events
// channel is full it remembers that it overflowed and delivers one Rescan
// as soon as there is room. A kernel queue overflow, a directory that could
// not be watched, and the periodic tick are reported the same way.
//
// Symbolic links are never followed: a symlink to a directory is not
// watched or walked, and a symlink to a file is not reported by Walk.
package watch
