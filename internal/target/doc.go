// Package target appends streams to files in the processor's target directory
// and makes them durable in group commits.
//
// Invariant: target content and committed stream offsets agree. A commit
// fsyncs every touched file, then records in one bbolt transaction each
// file's (inode, length) and each stream's committed offset; only then are
// offsets acknowledged. On open, a file whose inode matches its record is cut
// back to the recorded length: bytes past it were never acknowledged and the
// collector sends them again. The state store lives in relpath.StateDir
// inside the target directory, out of reach of any stream name.
//
// Files are reached only through an os.Root on the target directory, so a
// symlink cannot lead a write outside it; names are checked by relpath first.
package target
