//go:build unix && !thunder_portable

package target

import (
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"thunder/internal/relpath"
)

// The rest of the openat(2) variant of tree (resolve.go): what Open,
// recovery and commits ask of the target directory.

// treeSyncfs is true: commits may use syncfs(2) where the kernel has it
// and reports errors (syncfsReportsErrors), and so write behind.
const treeSyncfs = true

// newTree returns the tree of the target directory root.
func newTree(root *os.File) (tree, error) { return tree{root: root}, nil }

// close closes the target directory.
func (t *tree) close() error { return t.root.Close() }

// makeStateDir makes the state directory (a directory of its own, not a
// link to one) if it is missing, and returns its identity.
func (t *tree) makeStateDir(name string) (fileID, error) {
	rootFD := int(t.root.Fd())
	if err := unix.Mkdirat(rootFD, name, 0o700); err != nil && err != unix.EEXIST {
		return fileID{}, fmt.Errorf("create state dir: %w", err)
	}
	sfd, err := unix.Openat(rootFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fileID{}, fmt.Errorf("state dir %s: %w (it must be a directory, not a link)", path.Join(t.root.Name(), name), err)
	}
	info, err := statFD(sfd)
	unix.Close(sfd)
	if err != nil {
		return fileID{}, fmt.Errorf("state dir: %w", err)
	}
	return info.id, nil
}

// stateFileID returns the identity of name in the state directory, looked
// at without following a link.
func (t *tree) stateFileID(name string) (fileID, error) {
	fd, err := unix.Openat(int(t.root.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fileID{}, err
	}
	info, err := statFD(fd)
	unix.Close(fd)
	return info.id, err
}

// openStateFile opens name in the state directory for reading and writing,
// creating it, if it is a regular file and not a link.
func (t *tree) openStateFile(name string) (*os.File, error) {
	fd, err := unix.Openat(int(t.root.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w (it must be a regular file, not a link)", err)
	}
	f := os.NewFile(uintptr(fd), path.Join(t.root.Name(), name))
	if info, err := statFD(fd); err != nil || !info.regular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", f.Name())
	}
	return f, nil
}

// openEntry opens entry of dir (named dirName), for writing, if it is a
// regular file with inode ino; nil if not.
func (t *tree) openEntry(dir *os.File, dirName, entry string, ino uint64) *os.File {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), entry, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Ino != ino {
		return nil
	}
	fd, err := unix.Openat(int(dir.Fd()), entry, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path.Join(dirName, entry))
}

func (d *Dir) syncDir(dir string) error {
	fd, _, err := d.tree.openDir(dir, false)
	if outOfFDs(err) {
		// What the reserve is for (budget.go).
		d.reserve.release()
		fd, _, err = d.tree.openDir(dir, false)
		d.reserve.take(int(d.tree.root.Fd()))
	}
	if err != nil {
		return fmt.Errorf("%w: open dir %s: %v", ErrStorage, dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("%w: sync dir %s: %v", ErrStorage, dir, err)
	}
	return nil
}

// stateNames lists the state directory.
func (t *tree) stateNames() ([]string, error) {
	fd, err := unix.Openat(int(t.root.Fd()), relpath.StateDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	dir := os.NewFile(uintptr(fd), relpath.StateDir)
	defer dir.Close()
	return dir.Readdirnames(-1)
}

// removeStateFile removes name in the state directory.
func (t *tree) removeStateFile(name string) error {
	return unix.Unlinkat(int(t.root.Fd()), name, 0)
}

// reopenRoot opens the target directory again, as a descriptor of its own:
// syncfs(2) reports a writeback error once to each descriptor open when it
// happened.
func (t *tree) reopenRoot() (*os.File, error) {
	fd, err := unix.Openat(int(t.root.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s again: %w", t.root.Name(), err)
	}
	return os.NewFile(uintptr(fd), t.root.Name()), nil
}

// syncStateDir fsyncs the state directory: what was made in it is there
// after a crash.
func (t *tree) syncStateDir() error {
	fd, err := unix.Openat(int(t.root.Fd()), relpath.StateDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("sync state dir: %w", err)
	}
	return nil
}
