package harness_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"thunder/internal/harness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(harness.Main(m))
}

func TestListeningRE(t *testing.T) {
	for _, tc := range []struct{ name, line, want string }{
		{"text", `time=x level=INFO msg=listening addr=127.0.0.1:7357`, "127.0.0.1:7357"},
		{"text quoted", `time=x level=INFO msg="listening" name=p addr="[::1]:80"`, "[::1]:80"},
		{"json", `{"time":"x","level":"INFO","msg":"listening","addr":"127.0.0.1:9"}`, "127.0.0.1:9"},
		{"admin", `time=x level=INFO msg="admin listening" addr=127.0.0.1:1`, ""},
	} {
		m := harness.ListeningRE.FindStringSubmatch(tc.line)
		got := ""
		if m != nil {
			got = m[1] + m[2]
		}
		if got != tc.want {
			t.Errorf("%s: ListeningRE on %q = %q, want %q", tc.name, tc.line, got, tc.want)
		}
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"one\ntwo\nthree\n", 8, "three\n"}, {"abcdef", 3, "def"}} {
		if got := string(harness.Tail([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestPoll: Poll returns nil once f does, f's last error after the
// timeout, and at once, with the end of its stderr, when a process it
// watches has exited.
func TestPoll(t *testing.T) {
	n := 0
	if err := harness.Poll(t.Context(), time.Minute, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, n)
	}
	err := harness.Poll(t.Context(), 30*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || !strings.Contains(err.Error(), "never") {
		t.Errorf("Poll of a condition never met = %v, want its last error", err)
	}

	p := &harness.Process{Name: "shell", Bin: "/bin/sh", Args: []string{"-c", "echo 'panic: boom' >&2; exit 3"}, LogDir: t.TempDir()}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = harness.Poll(context.Background(), time.Minute, func() error { return errors.New("waiting") }, p)
	if err == nil || !strings.Contains(err.Error(), "shell exited unexpectedly") || !strings.Contains(err.Error(), "panic: boom") {
		t.Errorf("Poll on an exited process = %v, want its exit and stderr", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Poll took %v to see the exit", took)
	}
	if err := p.CheckLogs(); err == nil || !strings.Contains(err.Error(), "panic:") {
		t.Errorf("CheckLogs = %v, want the panic reported", err)
	}
	if err := p.CheckLogs(); err != nil {
		t.Errorf("second CheckLogs = %v, want nil: each file is checked once", err)
	}
}

// readyRE matches the line the test scripts log once their trap is set.
var readyRE = regexp.MustCompile(`ready`)

// TestProcessStop: Stop wants exit status 0 after SIGTERM.
func TestProcessStop(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		ok           bool
	}{
		{"clean", "trap 'exit 0' TERM; echo ready >&2; while :; do sleep 0.01; done", true},
		{"status 1", "trap 'exit 1' TERM; echo ready >&2; while :; do sleep 0.01; done", false},
	} {
		p := &harness.Process{Name: tc.name, Bin: "/bin/sh", Args: []string{"-c", tc.script}, LogDir: t.TempDir()}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.KillQuietly)
		if _, err := p.WaitLog(10*time.Second, readyRE); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(10 * time.Second); (err == nil) != tc.ok {
			t.Errorf("%s: Stop = %v, want ok %v", tc.name, err, tc.ok)
		}
		if p.Running() {
			t.Errorf("%s: still running after Stop", tc.name)
		}
	}
}
