package main

import "os"

// notifyReopen asks for nothing: Windows has no SIGHUP or SIGUSR1, and a
// file a process holds open there cannot be renamed under it, so no
// rotation waits for the processor to reopen (README, Platforms).
func notifyReopen(chan<- os.Signal) {}
