//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"thunder/internal/harness"
)

// A daemon is a thunder process started by the benchmark, with its JSON log
// in a file; it is stopped only by its PID.
type daemon struct{ *harness.Process }

// daemonTimeout bounds a daemon's start, its connections and its stop.
const daemonTimeout = 30 * time.Second

// startDaemon runs bin with args, its stderr logged under logDir.
func startDaemon(name, bin, logDir string, args ...string) (*daemon, error) {
	d := &daemon{&harness.Process{Name: name, Bin: bin, Args: append(args, "--log-format=json"), LogDir: logDir}}
	if err := d.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *daemon) pid() int { return d.Pid() }

// listenAddr waits for the processor's "listening" line and returns its address.
func (d *daemon) listenAddr() (string, error) { return d.ListenAddr(daemonTimeout) }

// waitConnected waits until n collectors connected to this processor.
func (d *daemon) waitConnected(ctx context.Context, n int) error {
	return harness.Poll(ctx, daemonTimeout, func() error {
		if got := bytes.Count(d.LastLog(), []byte(`"msg":"collector connected"`)); got < n {
			return fmt.Errorf("%s: %d of %d collectors connected; see %s", d.Name, got, n, d.LogDir)
		}
		return nil
	}, d.Process)
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
	err := errors.Join(d.Stop(daemonTimeout), d.CheckLogs())
	if err != nil {
		err = fmt.Errorf("%w; see %s", err, d.LogDir)
	}
	ps := d.ProcessState()
	u := usage{cpu: (ps.UserTime() + ps.SystemTime()).Seconds()}
	u.peakKiB = hwm
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && hwmErr != nil {
		u.peakKiB = ru.Maxrss
	}
	return u, err
}

// kill stops a daemon whose figures no longer matter (cleanup after an error).
func (d *daemon) kill() { d.KillQuietly() }

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
func startPair(ctx context.Context, c pairConfig) (*pair, error) {
	for _, d := range []string{c.src(), c.dst()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	proc, err := startDaemon("processor", c.bin, c.dir,
		append([]string{"logs-processor", "--target-dir=" + c.dst(), "--listen-address=127.0.0.1:0", "--name=bench-processor"}, c.procArgs...)...)
	if err != nil {
		return nil, err
	}
	addr, err := proc.listenAddr()
	if err != nil {
		proc.kill()
		return nil, err
	}
	coll, err := startDaemon("collector", c.bin, c.dir,
		append([]string{"logs-collector", "--source-dir=" + c.src(), "--offsets-db=" + filepath.Join(c.dir, "offsets.db"),
			"--target-address=" + addr, "--name=bench-collector"}, c.collArgs...)...)
	if err != nil {
		proc.kill()
		return nil, err
	}
	if err := proc.waitConnected(ctx, 1); err != nil {
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

// cpu returns the CPU seconds the collector and the processor used so far.
func (p *pair) cpu() (coll, proc float64, err error) {
	coll, err1 := cpuSeconds(p.coll.pid())
	proc, err2 := cpuSeconds(p.proc.pid())
	return coll, proc, errors.Join(err1, err2)
}

// kill stops both daemons without caring for figures.
func (p *pair) kill() {
	p.coll.kill()
	p.proc.kill()
}
