//go:build !linux

package target

import (
	"errors"
	"os"
)

// syncfs is Linux's only; syncfsReportsErrors keeps commits from calling it.
func syncfs(*os.File) error { return errors.ErrUnsupported }

// syncfsReportsErrors reports false: there is no syncfs(2) here, so every
// file of a commit is fsynced on its own.
func syncfsReportsErrors() bool { return false }
