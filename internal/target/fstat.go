//go:build unix

package target

import (
	"os"

	"golang.org/x/sys/unix"
)

// fstatInfo is statFD by fstat(2), for systems without statx (darwin,
// freebsd); built on Linux too so that its tests run there.
func fstatInfo(fd int) (fileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileInfo{}, &os.PathError{Op: "fstat", Path: "", Err: err}
	}
	return fileInfo{
		id:    fileID{Dev: uint64(st.Dev), Ino: st.Ino, Btime: birthTime(&st)},
		size:  st.Size,
		nlink: uint32(st.Nlink),
		mode:  uint16(st.Mode),
	}, nil
}
