//go:build unix

package inuse

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

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
	return scan(procDir, path, self, false)
}

// WritersOf is OpenBy counting only descriptors open for writing (their
// /proc/PID/fdinfo flags), so a reader such as `tail -f` is no writer.
func WritersOf(path string, self bool) (pids []int, err error) {
	return scan(procDir, path, self, true)
}

// scan is OpenBy, and WritersOf with write, looking in procDir; "" means
// this system has no /proc/PID/fd to look in.
func scan(procDir, path string, self, write bool) (pids []int, err error) {
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
		holds, err := holds(procDir, pid, uint64(want.Dev), want.Ino, write)
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
// the given device and inode (for writing, with write).
func holds(procDir string, pid int, dev, ino uint64, write bool) (bool, error) {
	base := procDir + "/" + strconv.Itoa(pid)
	dir := base + "/fd/"
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
		if uint64(st.Dev) == dev && st.Ino == ino && (!write || writable(base+"/fdinfo/"+fd)) {
			return true, nil
		}
	}
	return false, nil
}

// writable reports whether the descriptor whose /proc fdinfo file is at
// path is open for writing: its "flags:" line, in octal, has O_WRONLY or
// O_RDWR. A descriptor closed meanwhile is not.
func writable(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&unix.O_ACCMODE != unix.O_RDONLY
		}
	}
	return false
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
