package main

import "syscall"

// demoProcAttr asks for nothing: thunder demo runs a collector, so it
// refuses to start on Windows (platform.go) before it starts a daemon.
func demoProcAttr() *syscall.SysProcAttr { return nil }
