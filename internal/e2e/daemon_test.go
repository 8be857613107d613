package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a daemon may take to log that it listens
	// (a -race binary on a loaded machine is slow to start).
	startTimeout = 30 * time.Second
	// stopTimeout is how long a daemon has to exit after SIGTERM.
	stopTimeout = 10 * time.Second
	// killTimeout bounds the wait for a SIGKILLed process to be reaped.
	killTimeout = 10 * time.Second
	// startAttempts bounds the retries of a processor restart whose fixed
	// port is briefly busy.
	startAttempts = 10
	// logTailBytes is how much of each daemon's stderr a failed test logs.
	logTailBytes = 16 << 10
)

// processorArgs and collectorArgs are added to every daemon's command line.
var (
	processorArgs = []string{"--commit-interval=5ms"}
	collectorArgs = []string{"--rotate-size=0"}
)

// listeningRE matches the processor's log line once it accepts connections.
var listeningRE = regexp.MustCompile(`\bmsg=(?:listening|"listening")\s(?:.*\s)?addr="?([^\s"]+)`)

// badLogRE matches stderr that fails a test whatever else happened.
var badLogRE = regexp.MustCompile(`WARNING: DATA RACE|panic:`)

// A Daemon is a thunder daemon process run by a test. Its methods must be
// called from the test's goroutine.
type Daemon struct {
	t    *testing.T
	name string   // for messages and log files, e.g. "processor", "collector-A"
	args []string // command line after the binary
	dir  string   // holds the stderr of each start

	// Addr is the processor's listen address, host:port, read from its
	// "listening" log line; empty for a collector.
	Addr string

	starts int       // number of times started
	cmd    *exec.Cmd // current or last process
	done   chan struct{}
	err    error    // cmd.Wait's result, valid once done is closed
	logs   []string // stderr files, one per start

	checked map[string]bool // stderr files already checked by checkLog
}

// startProcessor starts a processor writing to targetDir on a free
// loopback port and returns once it listens. Restarts reuse the port.
func startProcessor(t *testing.T, targetDir string, extraArgs ...string) *Daemon {
	t.Helper()
	args := append([]string{"logs-processor", "--target-dir=" + targetDir}, processorArgs...)
	args = append(args, extraArgs...)
	d := newDaemon(t, "processor", args)
	if err := d.startProcessor("127.0.0.1:0"); err != nil {
		t.Fatalf("start processor: %v", err)
	}
	return d
}

// startCollector starts a collector named name shipping sourceDir to addr.
func startCollector(t *testing.T, name, sourceDir, offsetsDB, addr string, extraArgs ...string) *Daemon {
	t.Helper()
	args := []string{"logs-collector", "--offsets-db=" + offsetsDB, "--target-address=" + addr,
		"--source-dir=" + sourceDir, "--name=" + name}
	args = append(append(args, collectorArgs...), extraArgs...)
	d := newDaemon(t, "collector-"+name, args)
	if err := d.start(); err != nil {
		t.Fatalf("start collector %s: %v", name, err)
	}
	return d
}

func newDaemon(t *testing.T, name string, args []string) *Daemon {
	t.Helper()
	d := &Daemon{t: t, name: name, args: args, dir: t.TempDir(), checked: make(map[string]bool)}
	t.Cleanup(d.cleanup)
	return d
}

// start starts the process once, without waiting for anything.
func (d *Daemon) start() error {
	d.starts++
	logPath := filepath.Join(d.dir, fmt.Sprintf("%s-%d.stderr", d.name, d.starts))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(thunderBinary(d.t), d.args...)
	// atexit_sleep_ms: the race runtime otherwise sleeps a second at every
	// exit, which is most of each daemon stop.
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 atexit_sleep_ms=50")
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.logs = append(d.logs, logPath)
	d.cmd, d.done = cmd, make(chan struct{})
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	d.t.Logf("%s: started (pid %d): %s", d.name, cmd.Process.Pid, strings.Join(d.args, " "))
	return nil
}

// startProcessor starts the processor listening on listen and waits for
// its "listening" line. A fixed port may still be held for a moment by the
// previous process, so a start that exits early is retried.
func (d *Daemon) startProcessor(listen string) error {
	base := d.args
	defer func() { d.args = base }()
	d.args = append(base[:len(base):len(base)], "--listen-address="+listen)
	var errs []error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err := d.start(); err != nil {
			return err
		}
		addr, err := d.waitListening()
		if err == nil {
			if listen != "127.0.0.1:0" && addr != listen {
				return fmt.Errorf("listening on %s, want %s", addr, listen)
			}
			d.Addr = addr
			return nil
		}
		errs = append(errs, err)
		if d.Running() {
			return errors.Join(errs...)
		}
		d.checkLog(d.logs[len(d.logs)-1])
		// Back off before retrying: the port is expected to free up soon.
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	return errors.Join(errs...)
}

// waitListening polls the current stderr for the "listening" line.
func (d *Daemon) waitListening() (string, error) {
	logPath := d.logs[len(d.logs)-1]
	deadline := time.Now().Add(startTimeout)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return "", err
		}
		if m := listeningRE.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		if !d.Running() {
			return "", fmt.Errorf("%s exited before listening (%v):\n%s", d.name, d.err, tail(b, 2048))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s not listening after %v:\n%s", d.name, startTimeout, tail(b, 2048))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Running reports whether the process is alive.
func (d *Daemon) Running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process, failing the test if it has exited.
func (d *Daemon) Signal(sig os.Signal) {
	d.t.Helper()
	if !d.Running() {
		d.t.Fatalf("%s: signal %v: not running (exit: %v)", d.name, sig, d.err)
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("%s: signal %v: %v", d.name, sig, err)
	}
}

// Kill kills the process with SIGKILL and waits for it. The process must
// be running: a daemon that exited on its own fails the test.
func (d *Daemon) Kill() {
	d.t.Helper()
	if !d.Running() {
		d.t.Fatalf("%s: kill: exited on its own: %v", d.name, d.err)
	}
	_ = d.cmd.Process.Kill() // if it just exited, wait reports it
	if !d.wait(killTimeout) {
		d.t.Fatalf("%s: not reaped %v after SIGKILL", d.name, killTimeout)
	}
	d.t.Logf("%s: killed", d.name)
}

// Stop sends SIGTERM and waits for the process, which must exit with
// status 0 within stopTimeout.
func (d *Daemon) Stop() {
	d.t.Helper()
	if !d.Running() {
		d.t.Fatalf("%s: stop: exited on its own: %v", d.name, d.err)
	}
	start := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGTERM) // if it just exited, wait reports it
	if !d.wait(stopTimeout) {
		_ = d.cmd.Process.Kill()
		d.wait(killTimeout)
		d.t.Fatalf("%s: still running %v after SIGTERM; killed", d.name, stopTimeout)
	}
	if d.err != nil {
		d.t.Fatalf("%s: exit after SIGTERM: %v, want status 0", d.name, d.err)
	}
	d.t.Logf("%s: stopped in %v", d.name, time.Since(start).Round(time.Millisecond))
}

// Restart starts the stopped or killed process again with the same
// arguments; a processor listens on the same address again.
func (d *Daemon) Restart() {
	d.t.Helper()
	if d.Running() {
		d.t.Fatalf("%s: restart while running", d.name)
	}
	var err error
	if d.Addr != "" {
		err = d.startProcessor(d.Addr)
	} else {
		err = d.start()
	}
	if err != nil {
		d.t.Fatalf("%s: restart: %v", d.name, err)
	}
}

// wait waits up to timeout for the process to exit, checks its stderr, and
// reports whether it exited.
func (d *Daemon) wait(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-d.done:
		d.checkLog(d.logs[len(d.logs)-1])
		return true
	case <-timer.C:
		return false
	}
}

// checkLog fails the test if the stderr of an exited process reports a
// data race or a panic. It checks each file once.
func (d *Daemon) checkLog(path string) {
	d.t.Helper()
	if d.checked[path] {
		return
	}
	d.checked[path] = true
	b, err := os.ReadFile(path)
	if err != nil {
		d.t.Errorf("%s: read stderr: %v", d.name, err)
		return
	}
	if loc := badLogRE.FindIndex(b); loc != nil {
		from := max(0, loc[0]-512)
		d.t.Errorf("%s: %s in %s:\n%s", d.name, b[loc[0]:loc[1]], filepath.Base(path), tail(b[from:], 8<<10))
	}
}

// cleanup kills the process if it still runs and, if the test failed, logs
// the end of every stderr file.
func (d *Daemon) cleanup() {
	if d.Running() {
		_ = d.cmd.Process.Kill() // the test is over
		if !d.wait(killTimeout) {
			d.t.Errorf("%s: not reaped %v after SIGKILL", d.name, killTimeout)
		}
	}
	for _, p := range d.logs {
		d.checkLog(p)
	}
	if !d.t.Failed() {
		return
	}
	for _, p := range d.logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		d.t.Logf("--- %s (last %d bytes) ---\n%s", filepath.Base(p), logTailBytes, tail(b, logTailBytes))
	}
}

// tail returns the last n bytes of b, from a line start if possible.
func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return b
}
