package target

import (
	"io/fs"
	"os"
	"syscall"
)

// openNoBlock is 0: nothing in a directory opens as a FIFO on Windows.
const openNoBlock = 0

// isLink reports whether fi, from Lstat, is a reparse point of any kind
// (a symbolic link, a junction, a mount point, or a placeholder of a
// cloud or dedup filter): none is followed.
func isLink(fi fs.FileInfo) bool {
	a, ok := fi.Sys().(*syscall.Win32FileAttributeData)
	return !ok || a.FileAttributes&syscall.FILE_ATTRIBUTE_REPARSE_POINT != 0
}

// syncDirFile does nothing. NTFS writes a new directory entry to its
// metadata journal ($LogFile), and FlushFileBuffers of the file the entry
// names (every commit's fsync of it) flushes that journal with the file,
// so the entry is durable when the file is. Flushing the directory itself
// would need a handle with write access, which os.Root does not open.
func syncDirFile(*os.File) error { return nil }
