package target

import (
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// File type bits of fileInfo.mode, as on Unix.
const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
)

// statFD looks at an open handle (fd is its value): the volume serial
// number and 64-bit file index stand for device and inode; the creation
// time is the birth time. The index of an NTFS file carries a sequence
// number that changes when its MFT record is reused, so, unlike an inode
// number, it is not given to the next file at once.
func statFD(fd int) (fileInfo, error) {
	var st windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(fd), &st); err != nil {
		return fileInfo{}, &os.PathError{Op: "GetFileInformationByHandle", Path: "", Err: err}
	}
	info := fileInfo{
		id: fileID{
			Dev:   uint64(st.VolumeSerialNumber),
			Ino:   uint64(st.FileIndexHigh)<<32 | uint64(st.FileIndexLow),
			Btime: st.CreationTime.Nanoseconds(),
		},
		size:  int64(st.FileSizeHigh)<<32 | int64(st.FileSizeLow),
		nlink: st.NumberOfLinks,
		mode:  sIFREG,
	}
	if st.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 {
		info.mode = sIFDIR
	}
	return info, nil
}

// fileIDInfo is FILE_ID_INFO.
type fileIDInfo struct {
	VolumeSerialNumber uint64
	FileID             [16]byte
}

// handleOf returns f's 128-bit file ID (FileIdInfo), the whole identifier
// where the 64-bit index is only part of it (ReFS); nil where the file
// system has none (FAT), and the index and creation time are all there is.
// The creation time alone proves little: within 15 s Windows gives a file
// created under a deleted one's name that one's creation time (tunnelling).
func handleOf(f *os.File) []byte {
	var id fileIDInfo
	if windows.GetFileInformationByHandleEx(windows.Handle(f.Fd()), windows.FileIdInfo, (*byte)(unsafe.Pointer(&id)), uint32(unsafe.Sizeof(id))) != nil {
		return nil
	}
	return id.FileID[:]
}

var reOpenFile = windows.NewLazySystemDLL("kernel32.dll").NewProc("ReOpenFile")

// truncate sets f's length through a second handle to the same file
// (ReOpenFile: the file, not its name, which may hold another by now): a
// handle opened for appending has no FILE_WRITE_DATA, which setting the
// length needs, and keeps writing at the end whatever the length.
func truncate(f *os.File, size int64) error {
	h, _, err := reOpenFile.Call(f.Fd(), windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, 0)
	if windows.Handle(h) == windows.InvalidHandle {
		return &os.PathError{Op: "ReOpenFile", Path: f.Name(), Err: err}
	}
	defer windows.CloseHandle(windows.Handle(h))
	if err := windows.Ftruncate(windows.Handle(h), size); err != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: err}
	}
	return nil
}
