package watch

import "strings"

// Op is a set of changes, as bit flags.
type Op uint8

// Changes reported in an [Event].
const (
	// Write: a file's content changed.
	Write Op = 1 << iota
	// Create: a file or directory appeared, by creation or by being moved in.
	Create
	// Remove: a file or directory was deleted.
	Remove
	// Rename: a file or directory was moved away from Path; its new name, if
	// still under the watched directory, is reported as Create.
	Rename
	// Rescan: anything may have changed. The consumer walks the whole
	// directory after reading it and reconciles what it finds (new, grown
	// and vanished files) with what it knows: events that happened while
	// it was queued may have been folded into it.
	Rescan
)

// String returns the names of the flags in op, joined by '|'.
func (op Op) String() string {
	names := []string{"Write", "Create", "Remove", "Rename", "Rescan"}
	var parts []string
	for i, n := range names {
		if op&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

// Event reports that something under the watched directory may have changed.
type Event struct {
	// Path is the absolute path of the file or directory that changed, or ""
	// with Op == Rescan: walk everything.
	Path string
	Op   Op
}
