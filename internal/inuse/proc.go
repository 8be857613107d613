//go:build unix

package inuse

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNoProcAccess means /proc could not be read, or no other process's open
// files could be read for lack of permission: [OpenBy] cannot tell who
// holds a file. Callers should log it once and rely on [TryLockExclusive]
// and a grace period instead.
var ErrNoProcAccess = errors.New("inuse: cannot read other processes' open files in /proc")

// OpenBy returns the IDs of the processes that have path open, found by
// comparing the device and inode of path with those of every /proc/PID/fd/N
// (so a holder is found whatever name it opened the file by). The current
// process is left out unless self is true.
//
// Processes whose descriptors cannot be read (they exited, or belong to
// another user) are skipped, so without privileges the answer covers only
// this user's processes; if no other process could be read at all, OpenBy
// returns ErrNoProcAccess. Neither does it see processes hidden from this
// one (another PID namespace, /proc mounted with hidepid). It costs one
// stat per descriptor on the machine and is meant to be called rarely.
func OpenBy(path string, self bool) (pids []int, err error) {
	return openBy(procDir, path, self)
}

// openBy is OpenBy looking in procDir; "" means this system has no
// /proc/PID/fd to look in.
func openBy(procDir, path string, self bool) (pids []int, err error) {
	if procDir == "" {
		return nil, fmt.Errorf("%w: %s has no /proc/PID/fd", ErrNoProcAccess, runtime.GOOS)
	}
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return nil, fmt.Errorf("inuse: %w", &os.PathError{Op: "stat", Path: path, Err: err})
	}
	names, err := readDirNames(procDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProcAccess, err)
	}
	me := os.Getpid()
	var readable, denied int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue // not a process
		}
		if pid == me && !self {
			continue
		}
		holds, err := holds(procDir, pid, uint64(want.Dev), want.Ino)
		switch {
		case err == nil:
			if pid != me {
				readable++
			}
			if holds {
				pids = append(pids, pid)
			}
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			denied++
		default:
			// Exited meanwhile (ENOENT, ESRCH): skip.
		}
	}
	if readable == 0 && denied > 0 {
		return nil, ErrNoProcAccess
	}
	return pids, nil
}

// holds reports whether process pid has a descriptor open on the file with
// the given device and inode.
func holds(procDir string, pid int, dev, ino uint64) (bool, error) {
	dir := procDir + "/" + strconv.Itoa(pid) + "/fd/"
	fds, err := readDirNames(dir)
	if err != nil {
		return false, err
	}
	var st unix.Stat_t
	for _, fd := range fds {
		// Stat follows the magic link to the open file itself, even if it
		// was renamed or deleted since.
		if err := unix.Stat(dir+fd, &st); err != nil {
			continue // closed meanwhile, or not stat-able: not our file
		}
		if uint64(st.Dev) == dev && st.Ino == ino {
			return true, nil
		}
	}
	return false, nil
}

// readDirNames lists dir without sorting or stat-ing its entries.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	_ = f.Close() // read-only
	return names, err
}
