package main

import "os"

// notifyReopen asks for nothing: Windows has no SIGHUP or SIGUSR1. After
// rotating the target files there, restart the processor (README,
// Platforms).
func notifyReopen(chan<- os.Signal) {}
