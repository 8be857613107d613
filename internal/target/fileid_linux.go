package target

import (
	"os"

	"golang.org/x/sys/unix"
)

// statFD looks at an open descriptor: one statx(2) for the inode, size,
// links and birth time. The handle is not read here (see handleOf): it
// does not change while the file is open.
func statFD(fd int) (fileInfo, error) {
	var st unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_TYPE|unix.STATX_INO|unix.STATX_SIZE|unix.STATX_NLINK|unix.STATX_BTIME, &st)
	if err != nil {
		return fileInfo{}, &os.PathError{Op: "statx", Path: "", Err: err}
	}
	info := fileInfo{
		id:    fileID{Dev: unix.Mkdev(st.Dev_major, st.Dev_minor), Ino: st.Ino},
		size:  int64(st.Size),
		nlink: st.Nlink,
		mode:  st.Mode,
	}
	if st.Mask&unix.STATX_BTIME != 0 {
		info.id.Btime = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return info, nil
}

// handleOf returns f's file handle, or nil where the file system has none.
func handleOf(f *os.File) []byte {
	h, _, err := unix.NameToHandleAt(int(f.Fd()), "", unix.AT_EMPTY_PATH)
	if err != nil {
		return nil
	}
	b := make([]byte, 4, 4+len(h.Bytes()))
	b[0], b[1], b[2], b[3] = byte(h.Type()>>24), byte(h.Type()>>16), byte(h.Type()>>8), byte(h.Type())
	return append(b, h.Bytes()...)
}
