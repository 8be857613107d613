package watch

// Overflowed reports whether w owes a Rescan because its Events channel was
// full.
func Overflowed(w *Watcher) bool { return w.overflow.Load() }
