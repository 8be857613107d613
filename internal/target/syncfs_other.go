//go:build !linux

package target

import "errors"

// syncfs is Linux's only; syncfsReportsErrors keeps commits from calling it.
var syncfs = func(int) error { return errors.ErrUnsupported }

// syncfsReportsErrors reports false: there is no syncfs(2) here, so every
// file of a commit is fsynced on its own.
func syncfsReportsErrors(int) bool { return false }
