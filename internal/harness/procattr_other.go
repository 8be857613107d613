//go:build !linux

package harness

import "syscall"

// DiesWithParent returns no attributes: only Linux has Pdeathsig, so
// elsewhere a child outlives a test binary killed by its timeout (the kill in
// t.Cleanup still stops it in every other case).
func DiesWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
