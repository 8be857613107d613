package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ListeningRE matches the processor's "listening" log line, in text or JSON
// format; its first non-empty group is the address.
var ListeningRE = regexp.MustCompile(`\bmsg=(?:listening|"listening")\s(?:.*\s)?addr="?([^\s"]+)|"msg":"listening".*?"addr":"([^"]+)"`)

// BadLogRE matches stderr that fails a run whatever else happened: a
// race, a panic, or a collector finding that a processor holds other bytes
// than it sent (PROTOCOL §13), which no test of the real daemons expects.
var BadLogRE = regexp.MustCompile(`WARNING: DATA RACE|panic:|digest of a file differs`)

// A Process is a thunder daemon run by a test or a benchmark, with the
// stderr of each start in a file of its own. It is stopped only through its
// PID. Its methods report problems as errors and must be called from one
// goroutine; Running, Err and Pid may be called from any.
type Process struct {
	Name   string   // for messages and log files, e.g. "processor", "collector-A"
	Bin    string   // the thunder binary
	Args   []string // command line after the binary
	LogDir string   // holds the stderr of each start

	starts  int       // number of times started
	cmd     *exec.Cmd // current or last process
	done    chan struct{}
	err     error           // cmd.Wait's result, valid once done is closed
	logs    []string        // stderr files, one per start
	checked map[string]bool // stderr files already checked by CheckLogs
}

// Start starts the process once more, without waiting for anything. The
// process dies with this one (Pdeathsig) and, if built with -race, stops at
// the first race.
func (p *Process) Start() error {
	p.starts++
	logPath := filepath.Join(p.LogDir, fmt.Sprintf("%s-%d.stderr", p.Name, p.starts))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(p.Bin, p.Args...)
	// atexit_sleep_ms: the race runtime otherwise sleeps a second at every
	// exit, which is most of each daemon stop.
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 atexit_sleep_ms=50")
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = DiesWithParent()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.logs = append(p.logs, logPath)
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	return nil
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err returns the exit status of the last start once it has exited (nil
// for status 0), and nil while it runs.
func (p *Process) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// Pid returns the PID of the current or last start.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// ProcessState returns the state of the last start once it has exited.
func (p *Process) ProcessState() *os.ProcessState { return p.cmd.ProcessState }

// Starts returns how many times the process was started.
func (p *Process) Starts() int { return p.starts }

// Logs returns the stderr files, one per start, oldest first.
func (p *Process) Logs() []string { return p.logs }

// LastLog returns what the current or last start wrote so far.
func (p *Process) LastLog() []byte {
	if len(p.logs) == 0 {
		return nil
	}
	b, _ := os.ReadFile(p.logs[len(p.logs)-1]) // for messages: empty if unreadable
	return b
}

// LogText returns everything the process logged so far, over all starts.
func (p *Process) LogText() (string, error) {
	var b strings.Builder
	for _, path := range p.logs {
		data, err := os.ReadFile(path)
		if err != nil {
			return b.String(), fmt.Errorf("%s: read log: %w", p.Name, err)
		}
		b.Write(data)
	}
	return b.String(), nil
}

// WaitLog polls the current start's stderr until re matches and returns
// the submatches, failing if the process exits first or timeout passes.
func (p *Process) WaitLog(timeout time.Duration, re *regexp.Regexp) ([]string, error) {
	var m []string
	err := Poll(context.Background(), timeout, func() error {
		if m = re.FindStringSubmatch(string(p.LastLog())); m == nil {
			return fmt.Errorf("%s: no log line matches %v", p.Name, re)
		}
		return nil
	}, p)
	return m, err
}

// ListenAddr waits for the "listening" line of the current start and
// returns its address.
func (p *Process) ListenAddr(timeout time.Duration) (string, error) {
	m, err := p.WaitLog(timeout, ListeningRE)
	if err != nil {
		return "", err
	}
	for _, s := range m[1:] {
		if s != "" {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s: listening line without address", p.Name)
}

// Signal sends sig to the process, which must be running.
func (p *Process) Signal(sig os.Signal) error {
	if !p.Running() {
		return fmt.Errorf("%s: signal %v: not running (exit: %v)", p.Name, sig, p.err)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.Name, sig, err)
	}
	return nil
}

// Kill kills the running process with SIGKILL and waits up to timeout for
// it to be reaped.
func (p *Process) Kill(timeout time.Duration) error {
	if !p.Running() {
		return fmt.Errorf("%s: kill: exited on its own: %v", p.Name, p.err)
	}
	_ = p.cmd.Process.Kill() // if it just exited, Wait reports it
	if !p.Wait(timeout) {
		return fmt.Errorf("%s: not reaped %v after SIGKILL", p.Name, timeout)
	}
	return nil
}

// Stop sends SIGTERM to the running process, which must exit with status 0
// within timeout; a process still running then is killed.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return fmt.Errorf("%s: stop: exited on its own: %v", p.Name, p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // if it just exited, Wait reports it
	if !p.Wait(timeout) {
		_ = p.cmd.Process.Kill() // stuck: the error says so
		<-p.done
		return fmt.Errorf("%s: still running %v after SIGTERM; killed", p.Name, timeout)
	}
	if p.err != nil {
		return fmt.Errorf("%s: exit after SIGTERM: %v, want status 0", p.Name, p.err)
	}
	return nil
}

// KillQuietly kills the process if it still runs and waits for it: cleanup
// after the figures or the test stopped mattering.
func (p *Process) KillQuietly() {
	if p.Running() {
		_ = p.cmd.Process.Kill() // cleanup only
		<-p.done
	}
}

// Wait waits up to timeout for the process to exit and reports whether it
// did.
func (p *Process) Wait(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// CheckLogs returns an error for each stderr file of an exited start, not
// checked before, that reports a data race or a panic.
func (p *Process) CheckLogs() error {
	if p.checked == nil {
		p.checked = make(map[string]bool)
	}
	var errs []error
	for i, path := range p.logs {
		if p.checked[path] || (i == len(p.logs)-1 && p.Running()) {
			continue
		}
		p.checked[path] = true
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: read stderr: %w", p.Name, err))
			continue
		}
		if loc := BadLogRE.FindIndex(b); loc != nil {
			from := max(0, loc[0]-512)
			errs = append(errs, fmt.Errorf("%s: %s in %s:\n%s", p.Name, b[loc[0]:loc[1]], filepath.Base(path), Tail(b[from:], 8<<10)))
		}
	}
	return errors.Join(errs...)
}

// Poll calls f until it returns nil and returns nil then. It returns f's
// last error once timeout has passed or ctx is done, and at once if one of
// running has exited (with the end of its stderr).
func Poll(ctx context.Context, timeout time.Duration, f func() error, running ...*Process) error {
	deadline := time.Now().Add(timeout)
	timer := time.NewTimer(PollInterval)
	defer timer.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if derr := exited(running); derr != nil {
			return fmt.Errorf("%w\n(while waiting: %v)", derr, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		timer.Reset(PollInterval)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while waiting: %w", ctx.Err(), err)
		case <-timer.C:
		}
	}
}

// exited returns an error naming each of ps that is not running, with its
// exit status and the end of its last stderr; nil if all run.
func exited(ps []*Process) error {
	var errs []error
	for _, p := range ps {
		if !p.Running() {
			errs = append(errs, fmt.Errorf("%s exited unexpectedly: %v\n--- end of its stderr ---\n%s",
				p.Name, p.err, Tail(p.LastLog(), exitTailBytes)))
		}
	}
	return errors.Join(errs...)
}

// exitTailBytes is how much of a dead process's stderr a wait quotes.
const exitTailBytes = 4 << 10

// Tail returns the last n bytes of b, from a line start if possible.
func Tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return b
}
