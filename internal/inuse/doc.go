// Package inuse answers "may a writer still append to this file?" before the
// collector deletes a rotated file.
//
// Two independent probes: [TryLockExclusive] sees writers that follow the
// flock(LOCK_SH) contract, and [OpenBy] sees any process holding the file
// open, as far as /proc lets this process look. Invariant: neither probe
// reports a file free when it has evidence of a holder; when it cannot
// look, it says so with an error instead of answering.
package inuse
