package watch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Walk calls fn for every regular file under dir, recursively, in lexical
// order. It does not follow symlinks (dir itself excepted) and skips other
// non-regular files. Files and directories that vanish during the walk are
// skipped silently. Other errors, including those returned by fn, are
// collected and joined, and the walk carries on; fn may return
// [filepath.SkipAll] to stop early. A dir that does not exist is an error.
func Walk(dir string, fn func(path string, info fs.FileInfo) error) error {
	var errs []error
	err := walkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir || !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		err = fn(p, info)
		if errors.Is(err, filepath.SkipAll) {
			return err
		}
		if err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	errs = append(errs, err)
	return errors.Join(errs...)
}

// walkDir is filepath.WalkDir, except that it follows root if root is a
// symlink, like the watch on root does.
func walkDir(root string, fn fs.WalkDirFunc) error {
	if fi, err := os.Lstat(root); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target := root + string(filepath.Separator)
		return filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
			if p == target {
				p = root
			}
			return fn(p, d, err)
		})
	}
	return filepath.WalkDir(root, fn)
}
