//go:build unix && !linux

package main

import "os"

// fdatasync is fsync where there is no fdatasync(2) (the benchmarks read
// /proc and run on Linux; this keeps the package building elsewhere).
func fdatasync(f *os.File) error { return f.Sync() }
