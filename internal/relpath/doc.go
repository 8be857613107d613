// Package relpath validates and cleans file names received from the network
// before the processor writes them under its target directory.
//
// Invariant: a [Name], which only [Clean] makes, is local ([path/filepath.IsLocal]),
// contains no NUL byte and no ".." component, and is never [StateDir] nor
// inside it.
//
// Clean is the first of two independent guards. It reasons about the
// spelling of a name only; it cannot see symbolic links on disk. A symlink
// inside the target directory that points outside it is the second guard's
// job: the processor's target dir opens each component without following
// links (internal/target/resolve.go).
package relpath
