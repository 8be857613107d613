// Package harness holds what thunder's tests and benchmarks share to run
// the real thing: the thunder binary built once per test binary or bench
// run, daemons started, stopped, killed and restarted with their stderr
// captured and checked for data races and panics, waits on conditions with
// a deadline, tmpfs mounts and a locked buffer. Package harness/peer speaks
// the wire protocol by hand, as a fake collector or a fake processor.
//
// Its invariant: nothing a test starts outlives it. Every process has a
// kill in t.Cleanup and dies with the test binary (Pdeathsig), every wait is
// bounded in time and polls instead of sleeping a fixed time.
//
// It imports neither internal/collector nor internal/processor, whose tests
// import it.
package harness
