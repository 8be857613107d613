// Package target appends streams to files in the processor's target directory
// and makes them durable in group commits.
//
// Invariant: target content and committed stream offsets agree. A commit
// makes every touched file durable (an fsync each, or one syncfs(2) of the
// file system when many are touched: sync.go), then records in one bbolt transaction each
// file's (identity, length) and each stream's committed offset; only then are
// offsets acknowledged. On open, a file whose identity (device, inode, file
// handle, birth time: fileid.go) matches its record is cut back to the
// recorded length: bytes past it were never acknowledged and the collector
// sends them again. The state store lives in relpath.StateDir
// inside the target directory, out of reach of any stream name.
//
// Files are reached only by walking a name one component at a time with
// openat(2) and O_NOFOLLOW from the target directory (resolve.go), so a
// symlink is refused wherever it is, never followed; names are checked by
// relpath first.
package target
