package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildThunder builds ./cmd/thunder of the module at root into dir.
func buildThunder(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "thunder")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/thunder")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/thunder: %v\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the thunder repository")
	}
	return filepath.Dir(mod), nil
}

// A daemon is a thunder process started by the benchmark. It is stopped
// only by its PID. Its JSON log goes to a file and is watched for the
// "listening" and "collector connected" events.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, valid once done is closed

	mu        sync.Mutex
	addr      string // from the "listening" line
	connected int    // "collector connected" lines seen
	changed   chan struct{}
	log       *os.File
	partial   []byte
}

// startDaemon runs bin with args, its stderr logged to logPath.
func startDaemon(name, bin, logPath string, args ...string) (*daemon, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{name: name, done: make(chan struct{}), changed: make(chan struct{}, 1), log: lf}
	d.cmd = exec.Command(bin, append(args, "--log-format=json")...)
	d.cmd.Stdout = lf
	d.cmd.Stderr = d
	// The daemon dies with the benchmark, whatever happens to it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		lf.Close()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// Write receives the daemon's stderr: it is copied to the log file and
// scanned line by line for the events the benchmark waits for.
func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log.Write(p) // a lost log line does not change a measurement
	d.partial = append(d.partial, p...)
	for {
		i := bytes.IndexByte(d.partial, '\n')
		if i < 0 {
			break
		}
		d.line(d.partial[:i])
		d.partial = d.partial[i+1:]
	}
	d.partial = append([]byte(nil), d.partial...)
	return len(p), nil
}

func (d *daemon) line(l []byte) {
	var m struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(l, &m) != nil {
		return
	}
	switch m.Msg {
	case "listening":
		if d.addr == "" {
			d.addr = m.Addr
		}
	case "collector connected":
		d.connected++
	default:
		return
	}
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// waitFor polls cond, under d's lock, until it holds, the daemon exits or
// timeout passes.
func (d *daemon) waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		ok := cond()
		d.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-d.changed:
		case <-d.done:
			return fmt.Errorf("%s exited (%v) before %s; see %s", d.name, d.err, what, d.log.Name())
		case <-deadline.C:
			return fmt.Errorf("%s: no %s within %v; see %s", d.name, what, timeout, d.log.Name())
		}
	}
}

// listenAddr waits for the processor's "listening" line and returns its address.
func (d *daemon) listenAddr() (string, error) {
	err := d.waitFor(15*time.Second, "listening line", func() bool { return d.addr != "" })
	return d.addr, err
}

// waitConnected waits until n collectors connected to this processor.
func (d *daemon) waitConnected(n int, timeout time.Duration) error {
	return d.waitFor(timeout, fmt.Sprintf("%d collector connections", n), func() bool { return d.connected >= n })
}

// usage is what a stopped daemon used over its whole life.
type usage struct {
	cpu     float64 // user+sys seconds
	peakKiB int64   // peak resident set (VmHWM just before SIGTERM)
}

// stop sends SIGTERM, waits up to 30 s for a clean exit, then SIGKILLs. It
// returns the process's lifetime usage and an error unless it exited 0 on
// SIGTERM.
func (d *daemon) stop() (usage, error) {
	// VmHWM of the live process, as the kit reads it; the rusage of a
	// reaped child is only the fallback.
	hwm, hwmErr := statusKiB(d.pid(), "VmHWM")
	_ = d.cmd.Process.Signal(syscall.SIGTERM) // it may have exited already: Wait tells
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	var err error
	select {
	case <-d.done:
		if d.err != nil {
			err = fmt.Errorf("%s: %v; see %s", d.name, d.err, d.log.Name())
		}
	case <-t.C:
		_ = d.cmd.Process.Kill() // stuck: the error below says so
		<-d.done
		err = fmt.Errorf("%s did not stop within 30 s of SIGTERM; killed", d.name)
	}
	ps := d.cmd.ProcessState
	u := usage{cpu: (ps.UserTime() + ps.SystemTime()).Seconds()}
	u.peakKiB = hwm
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && hwmErr != nil {
		u.peakKiB = ru.Maxrss
	}
	return u, err
}

// kill stops a daemon whose figures no longer matter (cleanup after an error).
func (d *daemon) kill() {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Kill() // cleanup only
		<-d.done
	}
}

// pair is a processor and a collector shipping srcDir to dstDir.
type pair struct {
	proc, coll *daemon
	addr       string
}

// pairConfig holds the directories and extra flags of a pair.
type pairConfig struct {
	bin      string
	dir      string // holds src/, dst/, offsets.db and the logs
	procArgs []string
	collArgs []string
}

func (c pairConfig) src() string { return filepath.Join(c.dir, "src") }
func (c pairConfig) dst() string { return filepath.Join(c.dir, "dst") }

// startPair starts a processor, then a collector, and waits until the
// collector is connected.
func startPair(c pairConfig) (*pair, error) {
	for _, d := range []string{c.src(), c.dst()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	proc, err := startDaemon("processor", c.bin, filepath.Join(c.dir, "processor.log"),
		append([]string{"logs-processor", "--target-dir=" + c.dst(), "--listen-address=127.0.0.1:0", "--name=bench-processor"}, c.procArgs...)...)
	if err != nil {
		return nil, err
	}
	addr, err := proc.listenAddr()
	if err != nil {
		proc.kill()
		return nil, err
	}
	coll, err := startDaemon("collector", c.bin, filepath.Join(c.dir, "collector.log"),
		append([]string{"logs-collector", "--source-dir=" + c.src(), "--offsets-db=" + filepath.Join(c.dir, "offsets.db"),
			"--target-address=" + addr, "--name=bench-collector"}, c.collArgs...)...)
	if err != nil {
		proc.kill()
		return nil, err
	}
	if err := proc.waitConnected(1, 15*time.Second); err != nil {
		coll.kill()
		proc.kill()
		return nil, err
	}
	return &pair{proc: proc, coll: coll, addr: addr}, nil
}

// stop stops the collector, then the processor, and returns their usage.
func (p *pair) stop() (coll, proc usage, err error) {
	coll, err1 := p.coll.stop()
	proc, err2 := p.proc.stop()
	return coll, proc, errors.Join(err1, err2)
}

// kill stops both daemons without caring for figures.
func (p *pair) kill() {
	p.coll.kill()
	p.proc.kill()
}
