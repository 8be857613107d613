//go:build unix

package target

import (
	"os"

	"golang.org/x/sys/unix"
)

// File type bits of fileInfo.mode.
const (
	sIFMT  = unix.S_IFMT
	sIFREG = unix.S_IFREG
)

// truncate sets f's length.
func truncate(f *os.File, size int64) error { return f.Truncate(size) }
