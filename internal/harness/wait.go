package harness

import (
	"testing"
	"time"
)

// PollInterval is how often WaitFor and Poll look again.
const PollInterval = 10 * time.Millisecond

// WaitFor polls f until it returns nil. It fails the test with f's last
// error once timeout has passed, at once if one of running has exited
// (quoting the end of its stderr), or when the test's context is done.
func WaitFor(t testing.TB, timeout time.Duration, f func() error, running ...*Daemon) {
	t.Helper()
	ps := make([]*Process, len(running))
	for i, d := range running {
		ps[i] = d.Process
	}
	if err := Poll(t.Context(), timeout, f, ps...); err != nil {
		t.Fatal(err)
	}
}

// Exited returns an error naming each of ds that is not running, with its
// exit status and the end of its last stderr; nil if all run.
func Exited(ds ...*Daemon) error {
	ps := make([]*Process, len(ds))
	for i, d := range ds {
		ps[i] = d.Process
	}
	return exited(ps)
}
