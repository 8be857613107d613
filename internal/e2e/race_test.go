//go:build race

package e2e_test

// raceEnabled reports whether the tests were built with -race, so that the
// daemons are built with it too.
const raceEnabled = true
