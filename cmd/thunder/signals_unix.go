//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// notifyReopen sends the signals that ask the processor to reopen its
// target files (logrotate's postrotate) on c.
func notifyReopen(c chan<- os.Signal) { signal.Notify(c, syscall.SIGHUP, syscall.SIGUSR1) }
