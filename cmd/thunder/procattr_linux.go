package main

import "syscall"

// demoProcAttr puts a demo daemon in a process group of its own and has it
// killed when the demo dies (demo_daemon.go).
func demoProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
