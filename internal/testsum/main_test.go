package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// runIn runs testsum's run on the module in testdata/mod and returns its
// output and exit status.
func runIn(t *testing.T, fail bool) (string, int) {
	t.Helper()
	t.Chdir("testdata/mod")
	if fail {
		t.Setenv("TESTSUM_FAIL", "1")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"-count=1", "./..."}, &out, &errOut)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	return out.String(), code
}

// TestRunPasses: a passing run exits 0 and lists the skipped tests, with
// their reasons, at the end.
func TestRunPasses(t *testing.T) {
	out, code := runIn(t, false)
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	for _, want := range []string{
		"ok    example.com/mod (",
		"skipped (3):\n  example.com/mod TestSkips: mod_test.go:10: needs a unicorn\n  example.com/mod TestTable/sub: mod_test.go:20: subtest skipped: 42\n" +
			"  example.com/mod TestLogsThenSkips: mod_test.go:25: needs a file system that reuses inodes\n",
		"3 tests passed, 0 failed, 3 skipped in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestRunFails: a failing test keeps go test's exit status and shows its
// whole output.
func TestRunFails(t *testing.T) {
	out, code := runIn(t, true)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	for _, want := range []string{"FAIL  mod TestFails (", "the output of a failed test", "it fails", "FAIL  example.com/mod (", "FAILED: 1 tests in 1 packages:\n  example.com/mod TestFails\n  example.com/mod\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestHeartbeat: after Heartbeat of silence the running tests are named;
// before it, nothing is printed.
func TestHeartbeat(t *testing.T) {
	var out bytes.Buffer
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSummary(&out, t0)
	s.line([]byte(`{"Time":"2026-01-01T00:00:01Z","Action":"run","Package":"thunder/internal/e2e","Test":"TestLong"}`))
	s.line([]byte(`{"Time":"2026-01-01T00:00:01Z","Action":"run","Package":"thunder/internal/e2e","Test":"TestLong/sub"}`))
	s.heartbeat(t0.Add(Heartbeat / 2))
	if out.Len() != 0 {
		t.Errorf("heartbeat before %v of silence printed %q", Heartbeat, out.String())
	}
	s.heartbeat(t0.Add(Heartbeat + time.Second))
	if want := "[ 0:31]   running: internal/e2e TestLong (30s)\n"; out.String() != want {
		t.Errorf("heartbeat printed %q, want %q", out.String(), want)
	}
}
