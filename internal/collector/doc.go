// Package collector streams the files of a source directory to a processor.
//
// Data flows watch → source discovery → tail → link (frames over TCP) →
// acknowledgements → offsets DB. One goroutine, the loop in Run, owns every
// source; a link's reader and writer goroutines talk to it over channels.
// A source's life (live, idle, rotated, left, forgotten...) is a state
// machine whose transitions are in one place (state.go).
//
// Invariant: a stream's offset advances in the offsets DB only on the
// processor's acknowledgement, never beyond what this collector could have
// sent (bound.go: a processor reporting more is a protocol error, never a
// truncation), and a file is forgotten only once everything in it is
// acknowledged. The source file is the buffer: nothing unacknowledged
// is kept in memory, a reconnect resends from the file at the offset the
// processor names.
package collector
