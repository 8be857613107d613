//go:build unix

package collector

import (
	"io/fs"
	"syscall"
)

// openNoFollow: a FIFO or a symlink swapped in after the Lstat must not
// block the loop or lead out of the source dir.
const openNoFollow = syscall.O_NONBLOCK | syscall.O_NOFOLLOW

func statIno(fi fs.FileInfo) devIno {
	st := fi.Sys().(*syscall.Stat_t)
	return devIno{uint64(st.Dev), st.Ino}
}

func linkCount(fi fs.FileInfo) uint64 { return uint64(fi.Sys().(*syscall.Stat_t).Nlink) }
