//go:build thunder_portable && unix

package target

import (
	"io/fs"
	"os"
	"syscall"
)

// openNoBlock: a FIFO at a name fails to open instead of blocking, and a
// terminal does not become the controlling one.
const openNoBlock = syscall.O_NONBLOCK | syscall.O_NOCTTY

// isLink reports whether fi, from Lstat, is a symbolic link.
func isLink(fi fs.FileInfo) bool { return fi.Mode()&fs.ModeSymlink != 0 }

// syncDirFile fsyncs a directory: a new entry is durable only then.
func syncDirFile(f *os.File) error { return f.Sync() }
