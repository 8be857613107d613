// Package e2e holds end-to-end tests of thunder: they build the real
// binary, run its daemons as processes on loopback in temporary
// directories, inject faults (kill -9, connection cuts through a proxy,
// restarts, SIGHUP/SIGUSR1 reopen) and prove with package linecheck that
// every line arrived exactly once, whole, in order and under its name.
// The binary, the daemons, the waits and the hand-driven protocol peers
// come from package harness, which bench/ uses too.
//
// The package has no non-test code; run it with `go test ./internal/e2e/`
// (skipped with -short). Set THUNDER_E2E_SEED to replay the random fault
// schedule of an earlier run; every test logs its seed.
package e2e
