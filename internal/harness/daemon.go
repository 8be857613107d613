package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// StartTimeout bounds how long a processor may take to log that it
	// listens (a -race binary on a loaded machine is slow to start).
	StartTimeout = 30 * time.Second
	// StopTimeout is how long a daemon has to exit after SIGTERM.
	StopTimeout = 10 * time.Second
	// KillTimeout bounds the wait for a SIGKILLed process to be reaped.
	KillTimeout = 10 * time.Second
	// startAttempts bounds the retries of a processor restart whose fixed
	// port is briefly busy.
	startAttempts = 10
	// logTailBytes is how much of each daemon's stderr a failed test logs.
	logTailBytes = 16 << 10
)

// A Daemon is a Process run by a test: a problem fails the test, its stderr
// files are checked for data races and panics whenever it exits, and when
// the test ends it is killed if still running and, if the test failed, the
// end of each stderr file is logged. Its methods must be called from the
// test's goroutine.
type Daemon struct {
	*Process
	t testing.TB

	// Addr is the processor's listen address, host:port, read from its
	// "listening" log line; empty for a collector.
	Addr string
}

// StartProcessor starts a processor writing to targetDir on a free
// loopback port with the extra args, and returns once it listens.
// Restarts reuse the port.
func StartProcessor(t testing.TB, targetDir string, args ...string) *Daemon {
	t.Helper()
	d := NewDaemon(t, "processor", append([]string{"logs-processor", "--target-dir=" + targetDir}, args...))
	if err := d.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("start processor: %v", err)
	}
	return d
}

// StartCollector starts a collector called name shipping sourceDir to addr,
// its offsets in offsetsDB, with the extra args.
func StartCollector(t testing.TB, name, sourceDir, offsetsDB, addr string, args ...string) *Daemon {
	t.Helper()
	d := NewDaemon(t, "collector-"+name, append([]string{"logs-collector", "--offsets-db=" + offsetsDB,
		"--target-address=" + addr, "--source-dir=" + sourceDir, "--name=" + name}, args...))
	if err := d.Start(); err != nil {
		t.Fatalf("start collector %s: %v", name, err)
	}
	return d
}

// NewDaemon returns a daemon of the thunder binary (built by Binary) with
// the command line args, not started yet.
func NewDaemon(t testing.TB, name string, args []string) *Daemon {
	t.Helper()
	d := &Daemon{Process: &Process{Name: name, Bin: Binary(t), Args: args, LogDir: t.TempDir()}, t: t}
	t.Cleanup(d.cleanup)
	return d
}

// Start starts the process once, without waiting for anything.
func (d *Daemon) Start() error {
	if err := d.Process.Start(); err != nil {
		return err
	}
	d.t.Logf("%s: started (pid %d): %s", d.Name, d.Pid(), strings.Join(d.Args, " "))
	return nil
}

// Listen starts the processor listening on listen and waits for its
// "listening" line, setting Addr. A fixed port may still be held for a
// moment by the previous process, so a start that exits early is retried.
func (d *Daemon) Listen(listen string) error {
	base := d.Args
	defer func() { d.Args = base }()
	d.Args = append(base[:len(base):len(base)], "--listen-address="+listen)
	var errs []error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err := d.Start(); err != nil {
			return err
		}
		addr, err := d.ListenAddr(StartTimeout)
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
		d.checkLogs()
		// Back off before retrying: the port is expected to free up soon.
		select {
		case <-d.t.Context().Done():
			return errors.Join(append(errs, d.t.Context().Err())...)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	return errors.Join(errs...)
}

// Signal sends sig to the process, failing the test if it has exited.
func (d *Daemon) Signal(sig os.Signal) {
	d.t.Helper()
	if err := d.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// Kill kills the process with SIGKILL and waits for it. The process must
// be running: a daemon that exited on its own fails the test.
func (d *Daemon) Kill() {
	d.t.Helper()
	err := d.Process.Kill(KillTimeout)
	d.checkLogs()
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("%s: killed", d.Name)
}

// Stop sends SIGTERM and waits for the process, which must exit with
// status 0 within StopTimeout.
func (d *Daemon) Stop() {
	d.t.Helper()
	start := time.Now()
	err := d.Process.Stop(StopTimeout)
	d.checkLogs()
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("%s: stopped in %v", d.Name, time.Since(start).Round(time.Millisecond))
}

// Wait waits up to timeout for the process to exit, checks its stderr, and
// reports whether it exited.
func (d *Daemon) Wait(timeout time.Duration) bool {
	d.t.Helper()
	ok := d.Process.Wait(timeout)
	d.checkLogs()
	return ok
}

// Restart starts the stopped or killed process again with the same
// arguments; a processor listens on the same address again.
func (d *Daemon) Restart() {
	d.t.Helper()
	if d.Running() {
		d.t.Fatalf("%s: restart while running", d.Name)
	}
	var err error
	if d.Addr != "" {
		err = d.Listen(d.Addr)
	} else {
		err = d.Start()
	}
	if err != nil {
		d.t.Fatalf("%s: restart: %v", d.Name, err)
	}
}

// LogText returns everything d has logged so far, over all its starts.
func (d *Daemon) LogText() string {
	d.t.Helper()
	s, err := d.Process.LogText()
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

// checkLogs fails the test if the stderr of an exited start reports a
// data race or a panic.
func (d *Daemon) checkLogs() {
	d.t.Helper()
	if err := d.CheckLogs(); err != nil {
		d.t.Error(err)
	}
}

// cleanup kills the process if it still runs and, if the test failed, logs
// the end of every stderr file.
func (d *Daemon) cleanup() {
	if d.Running() {
		d.KillQuietly() // the test is over
	}
	d.checkLogs()
	if !d.t.Failed() {
		return
	}
	for _, p := range d.Logs() {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		d.t.Logf("--- %s (last %d bytes) ---\n%s", filepath.Base(p), logTailBytes, Tail(b, logTailBytes))
	}
}
