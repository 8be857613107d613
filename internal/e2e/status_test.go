//go:build unix

package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"thunder/internal/harness"
	"thunder/internal/linecheck"
)

// Terminal sequences thunder top writes around its screen.
const (
	altScreen  = "\x1b[?1049h"
	mainScreen = "\x1b[?1049l"
)

// cmdTimeout bounds one run of `thunder status` or `thunder top --count`.
const cmdTimeout = 30 * time.Second

// proc is a short-lived command a test runs beside the daemons.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// startProc starts cmd, killing it when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	cmd.SysProcAttr = harness.DiesWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // if still running, the test failed
		<-p.done
	})
	return p
}

// wait waits up to timeout for the command to exit and returns its error,
// failing the test if it does not exit.
func (p *proc) wait(t *testing.T, timeout time.Duration, after string, out *harness.LockedBuffer) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s still running %v after %s:\n%q", filepath.Base(p.cmd.Path), timeout, after, out.String())
		return nil
	}
}

// startPair starts a processor and a collector named name, both with an
// admin endpoint (the collector's set through a config file), and writers
// that keep writing for the length of a test; it returns the daemons and
// their admin addresses once lines flow.
func startPair(t *testing.T, name string) (p, c *Daemon, padm, cadm string) {
	t.Helper()
	target, src := t.TempDir(), t.TempDir()
	p = startProcessor(t, target, adminArgs...)
	cfg := filepath.Join(t.TempDir(), "collector.toml")
	if err := os.WriteFile(cfg, []byte("# set through the file, not a flag\nadmin-address = \"127.0.0.1:0\"\nrescan-interval = \"2s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = startCollector(t, name, src, offsetsDB(t), p.Addr, "--config="+cfg)
	startWriters(t,
		writerSpec{ID: "x", Dir: src, Name: "app/x.log", Contract: linecheck.LockedAppend, Lines: 1_000_000, Rate: 200},
		writerSpec{ID: "y", Dir: src, Name: "y.log", Contract: linecheck.OpenWriteClose, Lines: 1_000_000, Rate: 100},
	)
	waitLines(t, 30*time.Second, target, 50, p, c)
	padm, cadm = adminAddr(t, p), adminAddr(t, c)
	// The collector's status lists streams once a second.
	harness.WaitFor(t, 10*time.Second, func() error {
		_, body, err := httpGet(cadm, "/status")
		if err != nil {
			return err
		}
		if !bytes.Contains(body, []byte(`"app/x.log"`)) || !bytes.Contains(body, []byte(`"y.log"`)) {
			return fmt.Errorf("collector status lists no streams yet:\n%s", body)
		}
		return nil
	}, p, c)
	return p, c, padm, cadm
}

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestStatusCommand(t *testing.T) {
	skipShort(t)
	p, c, padm, cadm := startPair(t, "web-7")

	out, err := runThunder(t, cmdTimeout, "status", "--admin-address="+padm)
	if err != nil {
		t.Fatalf("status of the processor: %v\n%s", err, out)
	}
	for _, want := range []string{"processor", "healthy", "COLLECTOR", "web-7"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of the processor lacks %q:\n%s", want, out)
		}
	}
	t.Logf("thunder status (processor):\n%s", out)

	out, err = runThunder(t, cmdTimeout, "status", "--admin-address="+cadm)
	if err != nil {
		t.Fatalf("status of the collector: %v\n%s", err, out)
	}
	for _, want := range []string{`collector "web-7"`, "connected to " + p.Addr, "app/x.log", "y.log"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of the collector lacks %q:\n%s", want, out)
		}
	}
	t.Logf("thunder status (collector):\n%s", out)

	out, err = runThunder(t, cmdTimeout, "status", "--json", "--admin-address="+cadm)
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var st struct {
		Name      string `json:"name"`
		Connected bool   `json:"connected"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Name != "web-7" || !st.Connected {
		t.Errorf("status --json = %+v, %v:\n%s", st, err, out)
	}

	dead := deadAddr(t)
	out, err = runThunder(t, cmdTimeout, "status", "--admin-address="+dead)
	if err == nil || !strings.Contains(out, dead) {
		t.Errorf("status of a dead address: %v, want a non-zero exit naming %s:\n%s", err, dead, out)
	}

	// A collector without its processor is unhealthy: status says so and
	// exits non-zero.
	p.Kill()
	harness.WaitFor(t, 20*time.Second, func() error {
		out, err := runThunder(t, cmdTimeout, "status", "--admin-address="+cadm)
		if err == nil || !strings.Contains(out, "not connected") {
			return fmt.Errorf("status with the processor down: %v, want a non-zero exit:\n%s", err, out)
		}
		return nil
	}, c)
}

func TestTopPlain(t *testing.T) {
	skipShort(t)
	_, c, padm, cadm := startPair(t, "web-8")

	out, err := runThunder(t, cmdTimeout, "top", "--count=2", "--interval=300ms", "--admin-address="+padm)
	if err != nil {
		t.Fatalf("top --count=2: %v\n%s", err, out)
	}
	if n := strings.Count(out, "thunder top"); n != 2 {
		t.Errorf("top --count=2 printed %d blocks, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "web-8") || !strings.Contains(out, "B/s") {
		t.Errorf("top of the processor lacks the collector or its rate:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("escape sequences when stdout is not a terminal:\n%q", out)
	}
	t.Logf("thunder top (processor, not a terminal):\n%s", out)

	// Without --count, top runs until interrupted, and exits 0.
	var buf harness.LockedBuffer
	cmd := exec.Command(harness.Binary(t), "top", "--interval=200ms", "--admin-address="+cadm)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	top := startProc(t, cmd)
	harness.WaitFor(t, 20*time.Second, func() error {
		if n := strings.Count(buf.String(), "thunder top"); n < 2 {
			return fmt.Errorf("%d blocks from top:\n%s", n, buf.String())
		}
		return nil
	}, c)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := top.wait(t, stopTimeout, "SIGINT", &buf); err != nil {
		t.Errorf("top after SIGINT: %v, want exit 0\n%s", err, buf.String())
	}
	if !strings.Contains(buf.String(), "app/x.log") {
		t.Errorf("top of the collector lacks its streams:\n%s", buf.String())
	}
}

// TestTopTerminal runs top in a pseudo-terminal (script(1) from
// util-linux), reads the screens it draws and quits it with q.
func TestTopTerminal(t *testing.T) {
	skipShort(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not installed")
	}
	_, c, _, cadm := startPair(t, "web-9")

	var buf harness.LockedBuffer
	// -e: exit with top's status; -f: flush at once; -q: no banner.
	cmd := exec.Command(script, "-qefc", fmt.Sprintf("'%s' top --interval=200ms --admin-address=%s", harness.Binary(t), cadm), "/dev/null")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	keys, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	top := startProc(t, cmd)

	// Two screens, each drawn from the top left corner, with the
	// collector, its processor and the most lagging streams.
	harness.WaitFor(t, 20*time.Second, func() error {
		out := buf.String()
		if !strings.Contains(out, altScreen) {
			return fmt.Errorf("no alternate screen yet:\n%q", out)
		}
		if n := strings.Count(out, "\x1b[Hthunder top"); n < 2 {
			return fmt.Errorf("%d screens drawn:\n%q", n, out)
		}
		return nil
	}, c)
	out := buf.String()
	for _, want := range []string{`collector "web-9"`, "connected to", "LAG", "app/x.log", "y.log"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%q", want, out)
		}
	}
	if _, err := keys.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := top.wait(t, stopTimeout, "q", &buf); err != nil {
		t.Errorf("top after q: %v, want exit 0\n%q", err, buf.String())
	}
	if out := buf.String(); !strings.Contains(out, mainScreen) {
		t.Errorf("top did not restore the main screen:\n%q", out)
	}
	last := buf.String()
	if i := strings.LastIndex(last, "\x1b[Hthunder top"); i >= 0 {
		last = last[i:]
	}
	t.Logf("last screen of thunder top (collector):\n%s", last)
}
