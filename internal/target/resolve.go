//go:build unix && !thunder_portable

package target

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"thunder/internal/relpath"
)

// tree resolves names inside the target directory. Every file and
// directory the target dir opens is reached through it, one component at a
// time with openat(2) and O_NOFOLLOW from a descriptor of the directory
// before it, so:
//
//   - a symbolic link anywhere in a name is refused, not followed, even if
//     it is swapped in between two components (each step starts from a
//     descriptor, not a path); the processor never creates links itself,
//     so a link in the target dir was planted, and following one is how a
//     name would reach the state or a file tracked under another name;
//   - a directory that is the state directory under another name (a bind
//     mount) is refused too.
//
// Files with more than one name (hard links) are refused by the caller,
// which sees the link count of what it opened.
type tree struct {
	root  *os.File // the target directory
	state fileID   // the state directory: no name may lead into it
}

// errLink is what a name meets when a component is a symbolic link.
var errLink = errors.New("a component is a symbolic link (links in the target dir are not followed)")

// openDir opens dir (a cleaned relative name, "." for the root) and, with
// create, makes what is missing of it. It returns the directories whose
// entries changed, which must be fsynced before anything in them is
// acknowledged: on error too, as what it made stays.
func (t *tree) openDir(dir string, create bool) (fd int, created []string, err error) {
	root := int(t.root.Fd())
	if dir == "." {
		fd, err = unix.Openat(root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, nil, fmt.Errorf("%w: open target dir: %w", ErrStorage, err) // %w: an append waits out EMFILE (budget.go)
		}
		return fd, nil, nil
	}
	// The first step starts from the root's own descriptor, which is
	// never closed here; each later one from the descriptor before it.
	fd = root
	closeStep := func(fd int) {
		if fd != root {
			unix.Close(fd)
		}
	}
	at := "."
	for _, c := range strings.Split(dir, "/") {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil {
				created = append(created, at)
			}
			if err == nil || err == unix.EEXIST {
				next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if err == unix.ENOTDIR && isSymlink(fd, c) {
			err = unix.ELOOP
		}
		closeStep(fd)
		at = path.Join(at, c)
		if err != nil {
			return -1, created, pathError(at, err)
		}
		fd = next
		info, err := statFD(fd)
		if err != nil {
			unix.Close(fd)
			return -1, created, fmt.Errorf("%w: stat %s: %w", ErrStorage, at, err)
		}
		if info.id.sameInode(t.state) {
			unix.Close(fd)
			return -1, created, fmt.Errorf("%w: %s is the processor's state directory", ErrName, at)
		}
	}
	return fd, created, nil
}

// openFile opens name for writing (flags are added to O_WRONLY, with
// O_NOFOLLOW and O_NONBLOCK: a FIFO at the name fails instead of blocking).
// With create, a missing file and its directories are made with mode; the
// directories whose entries changed are returned on error too.
func (t *tree) openFile(name string, flags int, create bool, mode os.FileMode) (f *os.File, created []string, err error) {
	dfd, created, err := t.openDir(path.Dir(name), create)
	if err != nil {
		return nil, created, err
	}
	defer unix.Close(dfd)
	base := path.Base(name)
	if flags&unix.O_RDWR == 0 {
		flags |= unix.O_WRONLY
	}
	flags |= unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	// A device node planted at the name is not even opened (opening one
	// can have effects); the caller checks what it opened anyway.
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, created, pathError(name, unix.ELOOP)
		}
		return nil, created, fmt.Errorf("%w: %s: not a regular file", ErrName, name)
	}
	fd, err := unix.Openat(dfd, base, flags, 0)
	if err == unix.ENOENT && create {
		fd, err = unix.Openat(dfd, base, flags|unix.O_CREAT|unix.O_EXCL, uint32(mode.Perm()))
		if err == nil {
			created = append(created, path.Dir(name))
		}
	}
	if err != nil {
		return nil, created, pathError(name, err)
	}
	return os.NewFile(uintptr(fd), name), created, nil
}

// openParent opens the directory holding name, for looking at its
// siblings.
func (t *tree) openParent(name string) (*os.File, error) {
	fd, _, err := t.openDir(path.Dir(name), false)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path.Dir(name)), nil
}

// inState reports whether id is a file in the state directory: a file with
// several hard links may be one of them.
func (d *Dir) inState(id fileID) bool {
	fd, err := unix.Openat(int(d.tree.root.Fd()), relpath.StateDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return true // cannot tell: refuse
	}
	dir := os.NewFile(uintptr(fd), relpath.StateDir)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Ino == id.Ino && uint64(st.Dev) == id.Dev {
			return true
		}
	}
	return false
}

// isSymlink reports whether name in directory dfd is a symbolic link.
func isSymlink(dfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// pathError classifies an error resolving name: what is in the way of the
// name (a link, a file where a directory is needed, a directory, a FIFO or
// socket) is a name problem the collector cannot fix by resending;
// anything else is storage.
func pathError(name string, err error) error {
	var why string
	switch err {
	case unix.ELOOP:
		why = errLink.Error()
	case unix.ENOTDIR:
		why = "a file is in the way of a directory"
	case unix.EISDIR:
		why = "it is a directory"
	case unix.ENXIO, unix.EOPNOTSUPP:
		why = "it is a FIFO, socket or device"
	default:
		return fmt.Errorf("%w: %s: %w", ErrStorage, name, err)
	}
	return fmt.Errorf("%w: %s: %s", ErrName, name, why)
}

// openRead opens name for reading only, without following a link in any
// component and without opening anything but a regular file: for looking
// at what a name holds now (verify, pruneLedger). A missing name is an
// error wrapping fs.ErrNotExist.
func (t *tree) openRead(name string) (*os.File, error) {
	dfd, _, err := t.openDir(path.Dir(name), false)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	base := path.Base(name)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, pathError(name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, pathError(name, unix.ELOOP)
		}
		return nil, fmt.Errorf("%w: %s: not a regular file", ErrName, name)
	}
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathError(name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
