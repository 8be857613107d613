package main

import (
	"testing"

	"go.uber.org/goleak"

	"thunder/internal/harness"
)

// TestMain fails the package's tests if a goroutine they started, such as
// one of a daemon run in-process by run, is still running at the end, and
// removes the binary harness.Binary built for the demo's tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(harness.Main(m))
}
