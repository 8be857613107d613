//go:build unix && !linux

package inuse

// procDir is empty: neither macOS nor FreeBSD has /proc/PID/fd (FreeBSD's
// optional procfs has no fd directory, and scanning it would find no holder
// where there is one), so OpenBy reports ErrNoProcAccess and the collector
// falls back to its quiet period.
const procDir = ""
