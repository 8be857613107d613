//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/shard"
)

// demoTimeout bounds one run of the demo in a test: it runs about 15 s
// with the flags below, longer with -race on a loaded machine.
const demoTimeout = 3 * time.Minute

// runDemoBinary runs `thunder demo args...` as a user does, as a process
// of the real binary (which runs the daemons as its children), and
// returns its output; the test fails unless it exits with status 0.
func runDemoBinary(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), demoTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := demoCommand(ctx, t, &out, args...)
	err := cmd.Run()
	t.Logf("thunder demo %s:\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("thunder demo %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// demoCommand returns the command `thunder demo args...` writing to out.
func demoCommand(ctx context.Context, t *testing.T, out io.Writer, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, harness.Binary(t), append([]string{"demo"}, args...)...)
	// TMPDIR: a work dir the demo keeps goes with the test.
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(), "GORACE=halt_on_error=1 atexit_sleep_ms=50")
	cmd.SysProcAttr = harness.DiesWithParent()
	cmd.Stdout, cmd.Stderr = out, out
	return cmd
}

// demoStopsRE matches the demo's count of stops of each daemon.
var demoStopsRE = regexp.MustCompile(`(?m)^(kill -9|SIGTERM)s: processor (\d+), collector (\d+) `)

// wantStops checks that the output says the daemons were stopped with
// sig at least twice each, and shows each stop.
func wantStops(t *testing.T, out, sig string) {
	t.Helper()
	m := demoStopsRE.FindStringSubmatch(out)
	if m == nil || m[1] != sig {
		t.Fatalf("demo output lacks the %ss line", sig)
	}
	for i, daemon := range []string{"processor", "collector"} {
		if n, _ := strconv.Atoi(m[i+2]); n < 2 {
			t.Errorf("%s stopped %d times with %s, want at least 2", daemon, n, sig)
		}
		shown := regexp.MustCompile(`(?m)^\[ *[0-9.]+s\] `+regexp.QuoteMeta(sig)+` `+daemon+`\S* \(pid \d+\)`).FindAllString(out, -1)
		if len(shown) < 2 {
			t.Errorf("%d stops of the %s shown, want at least 2", len(shown), daemon)
		}
	}
}

// wantLines checks that out holds each of want.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("demo output lacks %q", w)
		}
	}
}

// TestDemo: the README's first command kills -9 the processor and the
// collector twice each while the writers of the three contracts write and
// files rotate, and ends with both verdicts: exactly once, and thunder
// verify's ok.
func TestDemo(t *testing.T) {
	out := runDemoBinary(t, "--seconds=5", "--rate=2000")
	wantStops(t, out, "kill -9")
	wantLines(t, out, "open/write/close per line", "flock held", "held open without a lock",
		": 0 lost, 0 duplicated, 0 corrupted", "verdict: exactly once",
		"thunder verify: ok: all 5 target files", "removed the work dir (--keep keeps it)")
	if m := regexp.MustCompile(`and (\d+) rotations ran`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("no rotation during the demo: %q", m)
	}
}

// TestDemoThreeProcessors: with --processors=3 every processor gets
// files, two of them are killed -9 and their files are seen on the next
// processor and back, and the lines on two processors are judged against
// the documented bound.
func TestDemoThreeProcessors(t *testing.T) {
	out := runDemoBinary(t, "--processors=3", "--seconds=5", "--rate=2000")
	wantStops(t, out, "kill -9")
	wantLines(t, out, "continues on processor-", "is back on processor-", "): within it", "verdict: every line arrived")
	held := regexp.MustCompile(`(?m)^  processor-\d \(target-\d\): (\d+) lines, none twice, in order$`).FindAllStringSubmatch(out, -1)
	if len(held) != 3 {
		t.Fatalf("%d processors with their own exactly-once line, want 3", len(held))
	}
	for i, m := range held {
		if m[1] == "0" {
			t.Errorf("processor-%d got no line: the files are not spread", i)
		}
	}
}

// TestDemoSIGTERM: stopped with SIGTERM, no processor leaves a line on
// another one.
func TestDemoSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for about 15 s; TestDemoThreeProcessors covers kill -9")
	}
	out := runDemoBinary(t, "--processors=3", "--signal=term", "--seconds=4", "--rate=1000")
	wantStops(t, out, "SIGTERM")
	wantLines(t, out, "on two processors: 0 lines (0 B); the documented bound is 0 B")
}

// TestDemoInterrupted: a demo that does not finish (here, Ctrl-C) exits
// non-zero, keeps its work dir and says where, and leaves no daemon
// running.
func TestDemoInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), demoTimeout)
	defer cancel()
	var out harness.LockedBuffer
	cmd := demoCommand(ctx, t, &out, "--seconds=10", "--rate=500")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := harness.Poll(ctx, time.Minute, func() error {
		if !strings.Contains(out.String(), "] kill -9 processor-0 (pid") {
			return errors.New("the demo has not killed the processor yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	t.Logf("thunder demo, interrupted:\n%s", out.String())
	if err == nil {
		t.Error("interrupted demo exited 0")
	}
	m := regexp.MustCompile(`kept the work dir for a look: (\S+) `).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatal("the interrupted demo does not say where its work dir is")
	}
	if fi, err := os.Stat(filepath.Join(m[1], "daemons.log")); err != nil || fi.Size() == 0 {
		t.Errorf("daemons.log in the kept work dir: %v, %v", fi, err)
	}
	for _, pid := range regexp.MustCompile(`\(?pid (\d+)`).FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.Atoi(pid[1])
		if err := syscall.Kill(n, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("daemon pid %d: kill -0 = %v, want ESRCH: still running after the demo", n, err)
		}
	}
}

// TestDemoFlags: bad flags are all reported at once, naming each, with
// exit status 2.
func TestDemoFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"demo", "--processors=9", "--signal=hup", "--seconds=0"}, &out, &out)
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("demo with bad flags = %v, want a usage error (exit 2)", err)
	}
	for _, want := range []string{"--processors=9", `--signal="hup"`, "--seconds=0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestQuickStartGoVersion: the README's quick start names the Go version
// of go.mod.
func TestQuickStartGoVersion(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "With Go " + string(m[1]) + " or later"; !bytes.Contains(readme, []byte(want)) {
		t.Errorf("README.md lacks %q (go.mod says go %s)", want, m[1])
	}
}

// TestLogAttr reads the attributes of slog's text lines, as the demo does
// with its daemons' logs.
func TestLogAttr(t *testing.T) {
	line := `time=2026-12-02T20:40:52.226Z level=INFO msg="target file cut back to committed length" name=api/requests.log size=1188500 bytes=11300`
	for _, tc := range []struct{ line, key, want string }{
		{line, "msg", "target file cut back to committed length"},
		{line, "bytes", "11300"},
		{line, "name", "api/requests.log"},
		{line, "size=", ""},
		{line, "addr", ""},
		{`time=x level=INFO msg=listening addr=127.0.0.1:7357 kafka=false`, "addr", "127.0.0.1:7357"},
		{`time=x level=INFO msg="a \"quoted\" word" x=1`, "msg", `a "quoted" word`},
		{`time=x level=INFO msg="unterminated`, "msg", ""},
	} {
		if got := logAttr(tc.line, tc.key); got != tc.want {
			t.Errorf("logAttr(%q, %q) = %q, want %q", tc.line, tc.key, got, tc.want)
		}
	}
}

// TestDemoNamesSpread: whatever ports the processors got, each ranks
// first for one of the demo's files at least.
func TestDemoNamesSpread(t *testing.T) {
	for n := 1; n <= demoFiles; n++ {
		for base := 30000; base < 30000+50*n; base += n {
			var addrs []string
			for i := range n {
				addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(base+i*7))
			}
			names, err := demoNamesFor(addrs)
			if err != nil {
				t.Fatalf("demoNamesFor(%v): %v", addrs, err)
			}
			got := make([]int, n)
			for _, name := range names {
				got[shard.Rank(name, addrs)[0]]++
			}
			if len(names) != demoFiles || slices.Contains(got, 0) {
				t.Errorf("demoNamesFor(%v) = %v: files per processor %v, want %d files, none without", addrs, names, got, demoFiles)
			}
			if n == 1 && !slices.Equal(names, demoNames[:demoFiles]) {
				t.Errorf("with one processor the names are %v, want %v", names, demoNames[:demoFiles])
			}
		}
	}
}
