package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds on the demo's daemons, which run on a machine that may be busy.
const (
	demoStartTimeout = 30 * time.Second // a start until its listening lines
	demoStopTimeout  = 10 * time.Second // SIGTERM or SIGKILL until reaped
	demoStartTries   = 10               // a restart whose fixed port is briefly busy
)

// demoDaemon is one daemon of the demo: a child process of this binary
// that dies with it (Pdeathsig), in a process group of its own so that a
// Ctrl-C reaches the demo only, which then stops it with SIGTERM. Its
// output goes to the demo's daemons.log. Its methods are called from the
// demo's goroutine.
type demoDaemon struct {
	name string
	bin  string
	args []string
	log  *demoLog

	cmd  *exec.Cmd
	done chan struct{} // closed once the current start is reaped
	err  error         // cmd.Wait's, once done is closed

	processor bool // logs a data address as well as its admin address

	mu     sync.Mutex // guards listen and admin, set by the log writer
	listen string     // the current start's "listening" address
	admin  string     // its "admin listening" address
	last   string     // the last line it wrote
}

// start starts the daemon once more and waits until it logged the
// addresses it listens on.
func (d *demoDaemon) start(ctx context.Context) error {
	d.mu.Lock()
	d.listen, d.admin = "", ""
	d.mu.Unlock()
	cmd := exec.Command(d.bin, d.args...)
	w := &demoLogWriter{log: d.log, d: d}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = demoProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	done := make(chan struct{})
	d.cmd, d.done = cmd, done
	go func() {
		err := cmd.Wait()
		w.flush()
		d.err = err
		close(done)
	}()
	return d.ready(ctx)
}

// startRetry starts the daemon, retrying a start that exits at once: a
// processor restarted on its port may find it held for a moment.
func (d *demoDaemon) startRetry(ctx context.Context) error {
	var err error
	for try := 1; try <= demoStartTries; try++ {
		if err = d.start(ctx); err == nil || d.running() || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// ready waits until the current start logged its admin address and, for
// a processor, its listening address.
func (d *demoDaemon) ready(ctx context.Context) error {
	deadline := time.Now().Add(demoStartTimeout)
	for {
		if listen, admin := d.addrs(); admin != "" && (listen != "" || !d.processor) {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("%s exited at start: %w", d.name, d.exitErr())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start within %v (see daemons.log)", d.name, demoStartTimeout)
		}
	}
}

// addrs returns the listening and admin addresses of the current start.
func (d *demoDaemon) addrs() (listen, admin string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.listen, d.admin
}

// exitErr returns how the exited daemon ended, with its last line.
func (d *demoDaemon) exitErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Errorf("%v; its last line: %s", d.err, d.last)
}

// running reports whether the current start is alive.
func (d *demoDaemon) running() bool {
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

// pid returns the current start's process id.
func (d *demoDaemon) pid() int { return d.cmd.Process.Pid }

// signal sends sig to the running daemon and waits until it is reaped:
// after SIGTERM it must exit with status 0.
func (d *demoDaemon) signal(sig syscall.Signal) error {
	if !d.running() {
		return fmt.Errorf("%s exited on its own: %w", d.name, d.exitErr())
	}
	_ = d.cmd.Process.Signal(sig) // if it just exited, the wait reports it
	select {
	case <-d.done:
	case <-time.After(demoStopTimeout):
		_ = d.cmd.Process.Kill() // stuck: the error says so
		<-d.done
		return fmt.Errorf("%s still running %v after %v; killed", d.name, demoStopTimeout, sig)
	}
	if sig == syscall.SIGTERM && d.err != nil {
		return fmt.Errorf("%s: exit after SIGTERM: %v, want status 0 (see daemons.log)", d.name, d.err)
	}
	return nil
}

// kill kills the daemon, if still running, and waits for it: cleanup
// after a failure.
func (d *demoDaemon) kill() {
	if d.running() {
		_ = d.cmd.Process.Kill() // cleanup only
		<-d.done
	}
}

// demoLog is the demo's daemons.log, written by every daemon, and what
// the demo counts in it. It is safe for concurrent use.
type demoLog struct {
	mu sync.Mutex
	w  io.Writer

	rotations, deletions int // "file rotated", "rotated file deleted"
	cutFiles             int // "target file cut back to committed length"
	cutBytes             int64
	errors               int      // ERROR lines
	bad                  []string // lines that fail the demo: races, panics, digest mismatches
}

// counts is a snapshot of what the demo counts in the log.
type demoLogCounts struct {
	rotations, deletions, cutFiles, errors int
	cutBytes                               int64
	bad                                    []string
}

func (l *demoLog) counts() demoLogCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return demoLogCounts{l.rotations, l.deletions, l.cutFiles, l.errors, l.cutBytes, l.bad}
}

// line writes one line of daemon d to the log and counts it.
func (l *demoLog) line(d *demoDaemon, line string) {
	msg := logAttr(line, "msg")
	d.mu.Lock()
	switch msg {
	case "listening":
		d.listen = logAttr(line, "addr")
	case "admin listening":
		d.admin = logAttr(line, "addr")
	}
	d.last = line
	d.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%-11s | %s\n", d.name, line)
	switch {
	case msg == "file rotated":
		l.rotations++
	case msg == "rotated file deleted":
		l.deletions++
	case msg == "target file cut back to committed length":
		n, _ := strconv.ParseInt(logAttr(line, "bytes"), 10, 64) // counted for the output only
		l.cutFiles, l.cutBytes = l.cutFiles+1, l.cutBytes+n
	case demoBadLine(line):
		l.bad = append(l.bad, d.name+": "+line)
	case strings.Contains(line, " level=ERROR "):
		l.errors++
	}
}

// demoBadLine reports whether a daemon's output line fails the demo
// whatever else happens: a data race, a panic, or a collector finding
// that a processor holds other bytes than it sent (PROTOCOL §13).
func demoBadLine(line string) bool {
	for _, s := range []string{"WARNING: DATA RACE", "panic:", "digest of a file differs"} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// logAttr returns the value of key in a line of slog's text format, or ""
// if absent.
func logAttr(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		q, err := strconv.QuotedPrefix(v)
		if err != nil {
			return ""
		}
		s, _ := strconv.Unquote(q) // a valid quoted prefix unquotes
		return s
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// demoLogWriter splits a daemon's output into lines for its demoLog.
// exec.Cmd calls Write from one goroutine at a time (Stdout and Stderr
// are the same writer).
type demoLogWriter struct {
	log     *demoLog
	d       *demoDaemon
	partial []byte
}

func (w *demoLogWriter) Write(p []byte) (int, error) {
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			return n, nil
		}
		w.log.line(w.d, string(append(w.partial, p[:i]...)))
		w.partial, p = w.partial[:0], p[i+1:]
	}
}

// flush writes an unterminated last line, once the process is reaped.
func (w *demoLogWriter) flush() {
	if len(w.partial) > 0 {
		w.log.line(w.d, string(w.partial))
		w.partial = nil
	}
}

// errDemoFailed is the error of a demo whose checks failed; what failed
// is printed above it.
var errDemoFailed = errors.New("demo: the checks failed (see above)")

// demoExecutable returns the path of this binary, which the demo runs as
// its daemons (`go run` builds a temporary one, which serves as well).
func demoExecutable() (string, error) {
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("demo: find this binary to run the daemons: %w", err)
	}
	return bin, nil
}
