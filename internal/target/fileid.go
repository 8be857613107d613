package target

import (
	"bytes"
	"os"
)

// fileID is what a target file is, as far as the file system can tell.
// An inode number alone proves nothing: ext4 gives a deleted file's inode
// to the next file created, at once. The file handle (what NFS uses to
// find a file again: the inode and its generation, which changes when the
// inode is reused) does, on every file system that has one (ext4, xfs,
// btrfs, tmpfs, ...). The birth time is the fallback where there is no
// handle; it is weaker (ext4 stamps it with a clock tick of a few ms, so a
// file deleted and replaced within one tick has the same).
type fileID struct {
	Dev, Ino uint64
	Btime    int64  // birth time, ns since the epoch; 0 if unknown
	Handle   []byte // handle type (4 bytes) and the file system's handle; nil if none
}

// sameInode reports whether a and b are the same inode now. It proves
// nothing about the past; see sameFile.
func (a fileID) sameInode(b fileID) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// sameFile reports whether a and b are provably the same file, whatever
// happened between the two looks: same inode, and the same handle, or
// where neither has one, the same birth time. Without either it is false.
func (a fileID) sameFile(b fileID) bool {
	switch {
	case !a.sameInode(b):
		return false
	case a.Handle != nil || b.Handle != nil:
		return bytes.Equal(a.Handle, b.Handle) && a.Btime == b.Btime
	default:
		return a.Btime != 0 && a.Btime == b.Btime
	}
}

// provable reports whether a can ever be proven the same file as another
// look at it.
func (a fileID) provable() bool { return a.Handle != nil || a.Btime != 0 }

// fileInfo is one look at an open file.
type fileInfo struct {
	id    fileID
	size  int64
	nlink uint32
	mode  uint16 // S_IFMT bits
}

func (i fileInfo) regular() bool { return i.mode&sIFMT == sIFREG }

// identify looks at f and reads its handle: the full identity of a file
// just opened.
func identify(f *os.File) (fileInfo, error) {
	info, err := statFD(int(f.Fd()))
	if err != nil {
		return info, err
	}
	info.id.Handle = handleOf(f)
	return info, nil
}

// cutTo truncates f to size if it is longer, never extending it (a file
// someone truncated meanwhile would otherwise gain a hole of NULs), and
// returns the length it has after.
func cutTo(f *os.File, size int64) (int64, error) {
	info, err := statFD(int(f.Fd()))
	if err != nil {
		return 0, err
	}
	if info.size <= size {
		return info.size, nil
	}
	if err := truncate(f, size); err != nil {
		return info.size, err
	}
	return size, nil
}

// cutWrite removes the n bytes a failed append left at the end of f.
func cutWrite(f *os.File, n int) error {
	info, err := statFD(int(f.Fd()))
	if err != nil {
		return err
	}
	return truncate(f, max(0, info.size-int64(n)))
}
