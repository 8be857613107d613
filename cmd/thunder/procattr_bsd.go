//go:build darwin || freebsd

package main

import "syscall"

// demoProcAttr puts a demo daemon in a process group of its own. There is
// no Pdeathsig here: a demo killed with SIGKILL leaves its daemons running
// (any other end of the demo stops them).
func demoProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
