//go:build windows || thunder_portable

package target

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"thunder/internal/relpath"
)

// tree resolves names inside the target directory, by os.Root: the
// variant for systems without openat(2) and O_NOFOLLOW (Windows), built on
// Linux too with -tags thunder_portable so that its tests run there.
//
// os.Root keeps every name inside the target directory (on Windows each
// component is opened with NtCreateFile relative to the handle of the
// directory before it), but it follows a link, or a junction or mount
// point, that stays inside. The rules are those of the openat variant
// (resolve.go), so tree walks a name one component at a time and, after
// opening each, looks at the component again without following (Lstat):
//
//   - a link, or any reparse point (isLink), is refused, not followed;
//   - so is a component that is not what was opened (os.SameFile): a link
//     swapped in for the open and swapped back before the look;
//   - a directory that is the state directory under another name is
//     refused by its identity, as in the openat variant.
//
// Files with more than one name (hard links) are refused by the caller,
// which sees the link count of what it opened.
type tree struct {
	root  *os.File // the target directory (syncfs, the descriptor reserve)
	r     *os.Root // the same directory: every name is opened under it
	state fileID   // the state directory: no name may lead into it
}

// treeSyncfs is false: Windows has no syncfs(2), and built on Linux
// (thunder_portable) this variant takes the path Windows takes, so that
// its tests test that: every file of a commit is fsynced on its own, and
// appends never write behind (behind.go), which needs syncfs.
const treeSyncfs = false

// errLink is what a name meets when a component is a symbolic link.
var errLink = errors.New("a component is a symbolic link (links in the target dir are not followed)")

// newTree opens root again as an os.Root and checks both are the same
// directory (root was opened by name, and the name may have changed).
func newTree(root *os.File) (tree, error) {
	r, err := os.OpenRoot(root.Name())
	if err != nil {
		return tree{}, err
	}
	a, err := root.Stat()
	if err == nil {
		var b fs.FileInfo
		if b, err = r.Stat("."); err == nil && !os.SameFile(a, b) {
			err = fmt.Errorf("%s was replaced while it was opened", root.Name())
		}
	}
	if err != nil {
		_ = r.Close() // the error that matters is err
		return tree{}, err
	}
	return tree{root: root, r: r}, nil
}

// close closes the target directory.
func (t *tree) close() error { return errors.Join(t.r.Close(), t.root.Close()) }

// openDir opens dir (a cleaned relative name, "." for the root) and, with
// create, makes what is missing of it. It returns the directories whose
// entries changed, which must be synced before anything in them is
// acknowledged: on error too, as what it made stays.
func (t *tree) openDir(dir string, create bool) (_ *os.Root, created []string, _ error) {
	cur, err := t.r.OpenRoot(".")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: open target dir: %w", ErrStorage, err) // %w: an append waits out a shortage (budget.go)
	}
	if dir == "." {
		return cur, nil, nil
	}
	at := "."
	for _, c := range strings.Split(dir, "/") {
		next, err := cur.OpenRoot(c)
		if errors.Is(err, fs.ErrNotExist) && create {
			if err = cur.Mkdir(c, 0o755); err == nil {
				created = append(created, at)
			}
			if err == nil || errors.Is(err, fs.ErrExist) {
				next, err = cur.OpenRoot(c)
			}
		}
		at = path.Join(at, c)
		var id fileID
		if err == nil {
			id, err = checkDir(cur, c, at, next)
		} else {
			err = nameError(cur, c, at, err, true)
		}
		_ = cur.Close() // read-only
		if err == nil && id.sameInode(t.state) {
			err = fmt.Errorf("%w: %s is the processor's state directory", ErrName, at)
		}
		if err != nil {
			if next != nil {
				_ = next.Close()
			}
			return nil, created, err
		}
		cur = next
	}
	return cur, created, nil
}

// checkDir checks that c in dir, looked at without following, is the
// directory next that opening it gave (not a link, nor swapped for one),
// and returns next's identity.
func checkDir(dir *os.Root, c, name string, next *os.Root) (fileID, error) {
	f, err := next.Open(".")
	if err != nil {
		return fileID{}, fmt.Errorf("%w: open %s: %w", ErrStorage, name, err)
	}
	defer f.Close()
	if err := sameEntry(dir, c, name, f); err != nil {
		return fileID{}, err
	}
	info, err := statFD(int(f.Fd()))
	if err != nil {
		return fileID{}, fmt.Errorf("%w: stat %s: %w", ErrStorage, name, err)
	}
	return info.id, nil
}

// sameEntry checks that base in dir, looked at without following, is not
// a link and is the file f that opening it gave.
func sameEntry(dir *os.Root, base, name string, f *os.File) error {
	opened, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: stat %s: %w", ErrStorage, name, err)
	}
	entry, err := dir.Lstat(base)
	switch {
	case err != nil:
		return fmt.Errorf("%w: stat %s: %w", ErrStorage, name, err)
	case isLink(entry):
		return fmt.Errorf("%w: %s: %s", ErrName, name, errLink)
	case !os.SameFile(opened, entry):
		return fmt.Errorf("%w: %s: replaced while it was opened (%s)", ErrName, name, errLink)
	}
	return nil
}

// nameError classifies an error opening base in dir (a directory with
// wantDir), by what base holds: what is in the way of the name (a link, a
// file where a directory is needed, a directory, a FIFO or socket) is a
// name problem the collector cannot fix by resending; anything else,
// a missing name too, is storage.
func nameError(dir *os.Root, base, name string, err error, wantDir bool) error {
	fi, lerr := dir.Lstat(base)
	var why string
	switch {
	case lerr != nil:
	case isLink(fi):
		why = errLink.Error()
	case wantDir && !fi.IsDir():
		why = "a file is in the way of a directory"
	case !wantDir && fi.IsDir():
		why = "it is a directory"
	case !wantDir && !fi.Mode().IsRegular():
		why = "it is a FIFO, socket or device"
	}
	if why == "" {
		return fmt.Errorf("%w: %s: %w", ErrStorage, name, err)
	}
	return fmt.Errorf("%w: %s: %s", ErrName, name, why)
}

// openLeaf opens base in dir with flag, refusing anything but a regular
// file: a device node planted at the name is not even opened (opening one
// can have effects), and a link is refused after the open if it was
// swapped in meanwhile.
func openLeaf(dir *os.Root, base, name string, flag int, perm fs.FileMode) (*os.File, error) {
	if fi, err := dir.Lstat(base); err == nil && (isLink(fi) || !fi.Mode().IsRegular()) {
		return nil, nameError(dir, base, name, nil, false)
	}
	f, err := dir.OpenFile(base, flag|openNoBlock, perm)
	if err != nil {
		return nil, nameError(dir, base, name, err, false)
	}
	if err := sameEntry(dir, base, name, f); err != nil {
		_ = f.Close() // the error that matters is sameEntry's
		return nil, err
	}
	return f, nil
}

// openFile opens name for writing (flags are added to O_WRONLY). With
// create, a missing file and its directories are made with mode; the
// directories whose entries changed are returned on error too.
func (t *tree) openFile(name string, flags int, create bool, mode os.FileMode) (*os.File, []string, error) {
	dir, created, err := t.openDir(path.Dir(name), create)
	if err != nil {
		return nil, created, err
	}
	defer dir.Close()
	base := path.Base(name)
	f, err := openLeaf(dir, base, name, flags|os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) && create {
		f, err = openLeaf(dir, base, name, flags|os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
		if err == nil {
			created = append(created, path.Dir(name))
		}
	}
	return f, created, err
}

// openRead opens name for reading only, without following a link in any
// component and without opening anything but a regular file: for looking
// at what a name holds now (verify, pruneLedger). A missing name is an
// error wrapping fs.ErrNotExist.
func (t *tree) openRead(name string) (*os.File, error) {
	dir, _, err := t.openDir(path.Dir(name), false)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return openLeaf(dir, path.Base(name), name, os.O_RDONLY, 0)
}

// openParent opens the directory holding name, for looking at its
// siblings.
func (t *tree) openParent(name string) (*os.File, error) {
	dir, _, err := t.openDir(path.Dir(name), false)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	f, err := dir.Open(".")
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrStorage, path.Dir(name), err)
	}
	return f, nil
}

// openEntry opens entry of the directory dirName, for writing, if it is a
// regular file with inode ino; nil if not. (dir, open, is only the openat
// variant's: here the name is walked again.)
func (t *tree) openEntry(_ *os.File, dirName, entry string, ino uint64) *os.File {
	dir, _, err := t.openDir(dirName, false)
	if err != nil {
		return nil
	}
	defer dir.Close()
	f, err := openLeaf(dir, entry, path.Join(dirName, entry), os.O_WRONLY, 0)
	if err != nil {
		return nil
	}
	if info, err := statFD(int(f.Fd())); err != nil || info.id.Ino != ino {
		_ = f.Close() // not the file looked for
		return nil
	}
	return f
}

// inState reports whether id is a file in the state directory: a file with
// several hard links may be one of them.
func (d *Dir) inState(id fileID) bool {
	sd, err := d.tree.r.OpenRoot(relpath.StateDir)
	if err != nil {
		return true // cannot tell: refuse
	}
	defer sd.Close()
	if _, err := checkDir(d.tree.r, relpath.StateDir, relpath.StateDir, sd); err != nil {
		return true
	}
	f, err := sd.Open(".")
	if err != nil {
		return true
	}
	names, err := f.Readdirnames(-1)
	_ = f.Close() // read-only
	if err != nil {
		return true
	}
	for _, n := range names {
		g, err := openLeaf(sd, n, n, os.O_RDONLY, 0)
		if err != nil {
			continue
		}
		info, err := statFD(int(g.Fd()))
		_ = g.Close() // read-only
		if err == nil && info.id.sameInode(id) {
			return true
		}
	}
	return false
}

// makeStateDir makes the state directory (a directory of its own, not a
// link to one) if it is missing, and returns its identity.
func (t *tree) makeStateDir(name string) (fileID, error) {
	if err := t.r.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fileID{}, fmt.Errorf("create state dir: %w", err)
	}
	sd, err := t.r.OpenRoot(name)
	var id fileID
	if err == nil {
		id, err = checkDir(t.r, name, name, sd)
		_ = sd.Close() // read-only
	}
	if err != nil {
		return fileID{}, fmt.Errorf("state dir %s: %w (it must be a directory, not a link)", path.Join(t.root.Name(), name), err)
	}
	return id, nil
}

// openStateFile opens name in the state directory for reading and writing,
// creating it, if it is a regular file and not a link.
func (t *tree) openStateFile(name string) (*os.File, error) {
	sd, err := t.r.OpenRoot(path.Dir(name))
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	f, err := openLeaf(sd, path.Base(name), name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w (it must be a regular file, not a link)", err)
	}
	return f, nil
}

// stateFileID returns the identity of name in the state directory, looked
// at without following a link.
func (t *tree) stateFileID(name string) (fileID, error) {
	sd, err := t.r.OpenRoot(path.Dir(name))
	if err != nil {
		return fileID{}, err
	}
	defer sd.Close()
	f, err := openLeaf(sd, path.Base(name), name, os.O_RDONLY, 0)
	if err != nil {
		return fileID{}, err
	}
	defer f.Close()
	info, err := statFD(int(f.Fd()))
	return info.id, err
}

// syncDir makes dir's entries durable (syncDirFile: an fsync where the
// system needs one).
func (d *Dir) syncDir(dir string) error {
	r, _, err := d.tree.openDir(dir, false)
	if err != nil {
		return fmt.Errorf("%w: open dir %s: %v", ErrStorage, dir, err)
	}
	defer r.Close()
	f, err := r.Open(".")
	if err != nil {
		return fmt.Errorf("%w: open dir %s: %v", ErrStorage, dir, err)
	}
	defer f.Close()
	if err := syncDirFile(f); err != nil {
		return fmt.Errorf("%w: sync dir %s: %v", ErrStorage, dir, err)
	}
	return nil
}

// stateNames lists the state directory.
func (t *tree) stateNames() ([]string, error) {
	f, err := t.r.Open(relpath.StateDir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// removeStateFile removes name in the state directory.
func (t *tree) removeStateFile(name string) error { return t.r.Remove(name) }

// reopenRoot and syncStateDir serve the journal, which needs syncfs(2):
// there is none in this variant (treeSyncfs).
func (t *tree) reopenRoot() (*os.File, error) { return nil, errors.ErrUnsupported }
func (t *tree) syncStateDir() error           { return errors.ErrUnsupported }
