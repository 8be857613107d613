//go:build unix

package e2e_test

import (
	"testing"

	"thunder/internal/harness"
)

// The harness's bounds, under the names the tests use.
const (
	startTimeout = harness.StartTimeout
	stopTimeout  = harness.StopTimeout
)

// processorArgs and collectorArgs are added to every daemon's command line.
var (
	processorArgs = []string{"--commit-interval=5ms"}
	collectorArgs = []string{"--rotate-size=0"}
)

// A Daemon is a thunder daemon process run by a test.
type Daemon = harness.Daemon

// startProcessor starts a processor writing to targetDir on a free
// loopback port and returns once it listens. Restarts reuse the port.
func startProcessor(t *testing.T, targetDir string, extraArgs ...string) *Daemon {
	t.Helper()
	return harness.StartProcessor(t, targetDir, append(processorArgs[:len(processorArgs):len(processorArgs)], extraArgs...)...)
}

// startCollector starts a collector named name shipping sourceDir to addr.
func startCollector(t *testing.T, name, sourceDir, offsetsDB, addr string, extraArgs ...string) *Daemon {
	t.Helper()
	return harness.StartCollector(t, name, sourceDir, offsetsDB, addr, append(collectorArgs[:len(collectorArgs):len(collectorArgs)], extraArgs...)...)
}
