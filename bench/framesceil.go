//go:build unix

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"thunder/internal/linecheck"
)

// The frames ceiling of the fleet scenarios: what this box can do at all
// with their shape, the same connections, files and 1 KiB frames (one
// write(2) each on both sides), copied socket → file by plain Go with no
// protocol, no acknowledgement, no state and one sync at the end. Its
// generator sends prebuilt frames (the fakes format linecheck lines), and
// its copiers hold every file open: framesCeilProcs processes, so that
// 10,000 connections and 30,000 files fit the descriptor limit of each
// where one thunder processor writes through --max-open-files. It bounds
// from above what any processor could ack on this box for this shape: the
// cores, not the disk, bound it when the frames are small.
const (
	framesCeilServeArg = "-frames-ceiling-serve" // the bench binary as one copier
	framesCeilProcs    = 3
	framesCeilHeader   = 8 // stream index, payload length: uint32 each
)

// framesCeil is what one frames-ceiling run measured.
type framesCeil struct {
	bytes    int64
	took     time.Duration // first frame → all written and synced
	cores    float64       // the copiers, together
	genCores float64       // this process, the generator
	quiet    bool
	busy     float64
}

func (c framesCeil) mibps() float64 { return mibps(c.bytes, c.took) }

// copier is one copier process of the frames ceiling.
type copier struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

// framesCeiling runs the frames ceiling for collectors connections of
// files streams each, for b.liveFor or until each stream sent streamMax
// bytes, as the fakes do: without that bound the socket buffers and the
// page cache take gigabytes more than thunder's windows let it send.
func (b *bench) framesCeiling(name string, collectors, files int, streamMax int64) (r framesCeil, err error) {
	dir, err := b.scratch(name + "-frames-ceiling")
	if err != nil {
		return r, err
	}
	defer b.drop(dir)
	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	copiers := make([]*copier, 0, framesCeilProcs)
	defer func() {
		for _, c := range copiers {
			c.in.Close() // it exits at the end of its stdin
			_ = c.cmd.Wait()
		}
	}()
	for i := range framesCeilProcs {
		c, err := startCopier(self, filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			return r, err
		}
		copiers = append(copiers, c)
	}
	r.quiet, r.busy = b.quiet()
	conns, err := dialCopiers(copiers, collectors, files)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close() // cleanup after an error; the senders close the rest
			}
		}
	}()
	if err != nil {
		return r, err
	}
	cpu0, err := copierCPU(copiers)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	sent := sendFrames(conns, files, streamMax, b.liveFor)
	conns = nil // closed by the senders
	got := int64(0)
	for _, c := range copiers {
		if _, err := io.WriteString(c.in, "sync\n"); err != nil {
			return r, err
		}
	}
	for _, c := range copiers {
		n, err := c.done()
		if err != nil {
			return r, err
		}
		got += n
	}
	r.took = time.Since(t0)
	cpu1, err := copierCPU(copiers)
	if err != nil {
		return r, err
	}
	r.cores = (sumOf(cpu1[:len(copiers)]) - sumOf(cpu0[:len(copiers)])) / r.took.Seconds()
	r.genCores = (cpu1[len(copiers)] - cpu0[len(copiers)]) / r.took.Seconds()
	r.bytes = got
	if got != sent {
		return r, fmt.Errorf("frames ceiling: %d bytes sent, %d written", sent, got)
	}
	return r, nil
}

// startCopier starts the bench binary as a copier into dir and reads the
// address it listens on.
func startCopier(self, dir string) (*copier, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	c := &copier{cmd: exec.Command(self, framesCeilServeArg, dir)}
	c.cmd.Stderr = os.Stderr
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	c.out = bufio.NewScanner(out)
	line, err := c.line()
	if err != nil {
		c.in.Close()
		_ = c.cmd.Wait()
		return nil, err
	}
	c.addr = strings.TrimPrefix(line, "listening ")
	return c, nil
}

// line reads the copier's next line on stdout.
func (c *copier) line() (string, error) {
	if !c.out.Scan() {
		return "", fmt.Errorf("frames ceiling: copier %d ended: %v", c.cmd.Process.Pid, c.out.Err())
	}
	return c.out.Text(), nil
}

// done reads the bytes the copier wrote, once it saw every connection end
// and synced.
func (c *copier) done() (int64, error) {
	line, err := c.line()
	if err != nil {
		return 0, err
	}
	var n int64
	if _, err := fmt.Sscanf(line, "done %d", &n); err != nil {
		return 0, fmt.Errorf("frames ceiling: copier says %q", line)
	}
	return n, nil
}

// copierCPU is the CPU seconds of each copier, then of this process.
func copierCPU(cs []*copier) ([]float64, error) {
	v := make([]float64, 0, len(cs)+1)
	for _, pid := range append(pids(cs), os.Getpid()) {
		s, err := cpuSeconds(pid)
		if err != nil {
			return nil, err
		}
		v = append(v, s)
	}
	return v, nil
}

func pids(cs []*copier) []int {
	p := make([]int, len(cs))
	for i, c := range cs {
		p[i] = c.cmd.Process.Pid
	}
	return p
}

// dialCopiers connects collectors connections, spread over the copiers
// (fakeDialers at once), each naming its directory and its number of
// files, and waits until each copier opened them.
func dialCopiers(cs []*copier, collectors, files int) ([]net.Conn, error) {
	conns := make([]net.Conn, collectors)
	errs := make([]error, collectors)
	sem := make(chan struct{}, fakeDialers)
	var wg sync.WaitGroup
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", cs[i%len(cs)].addr, fakeTimeout)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = c
			_ = c.SetDeadline(time.Now().Add(fakeTimeout))
			ok := []byte{0}
			if _, err := fmt.Fprintf(c, "c%05d %d\n", i, files); err != nil {
				errs[i] = err
			} else if _, err := io.ReadFull(c, ok); err != nil || ok[0] != 'k' {
				errs[i] = fmt.Errorf("frames ceiling: connection %d not opened: %v", i, err)
			}
			_ = c.SetDeadline(time.Time{})
		})
	}
	wg.Wait()
	return conns, errors.Join(errs...)
}

// sendFrames writes frames of fakeFrameLines lines, one write(2) each, to
// each file of each connection in turn for d or until each file got
// streamMax bytes, closes the connections, and returns the payload bytes
// sent.
func sendFrames(conns []net.Conn, files int, streamMax int64, d time.Duration) int64 {
	payload := make([]byte, 0, fakeFrameLines*lineBytes)
	for i := range uint64(fakeFrameLines) {
		payload, _ = linecheck.AppendLine(payload, "ceiling", i, lineBytes)
	}
	frames := make([][]byte, files)
	for i := range frames {
		frames[i] = binary.LittleEndian.AppendUint32(nil, uint32(i))
		frames[i] = binary.LittleEndian.AppendUint32(frames[i], uint32(len(payload)))
		frames[i] = append(frames[i], payload...)
	}
	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			defer c.Close() // the copier reads to the end
			n := int64(0)
			defer func() { sent.Add(n) }()
			for n < streamMax*int64(files) && !stop.Load() {
				for _, f := range frames {
					if _, err := c.Write(f); err != nil {
						return // the copier reports what it wrote
					}
					n += int64(len(payload))
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		stop.Store(true)
		<-done
	}
	return sent.Load()
}

// framesCeilingServe is one copier: it listens on 127.0.0.1, prints the
// address, and for each connection creates the directory it names with
// its files, answers 'k', and appends each frame's payload to its file
// with one write(2). On "sync" on stdin it stops accepting, waits for
// the connections to end, syncs, prints "done BYTES", and exits at the
// end of stdin (the bench reads its CPU before).
func framesCeilingServe(dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	var (
		total   atomic.Int64
		wg      sync.WaitGroup
		errMu   sync.Mutex
		errConn error
	)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at "sync"
			}
			wg.Go(func() {
				if err := copyConn(c, dir, &total); err != nil {
					errMu.Lock()
					errConn = errors.Join(errConn, err)
					errMu.Unlock()
				}
			})
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "sync" {
		return errors.New("frames ceiling copier: stdin ended before sync")
	}
	ln.Close() // every connection was accepted: each got its 'k'
	<-accepted
	wg.Wait()
	if errConn != nil {
		return errConn
	}
	syscall.Sync()
	fmt.Printf("done %d\n", total.Load())
	for in.Scan() {
	}
	return nil
}

// copyConn serves one connection of framesCeilingServe.
func copyConn(c net.Conn, dir string, total *atomic.Int64) error {
	defer c.Close() // read to the end
	r := bufio.NewReaderSize(c, 32<<10)
	hello, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	var id string
	var n int
	if _, err := fmt.Sscanf(hello, "%s %d", &id, &n); err != nil || n < 1 || n > 16 || strings.ContainsAny(id, "/.") {
		return fmt.Errorf("bad hello %q", hello)
	}
	if err := os.Mkdir(filepath.Join(dir, id), 0o755); err != nil {
		return err
	}
	files := make([]*os.File, n)
	for i := range files {
		if files[i], err = os.OpenFile(filepath.Join(dir, id, fmt.Sprintf("f%d.log", i)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return err
		}
		defer files[i].Close() // synced by the Sync at the end
	}
	if _, err := c.Write([]byte{'k'}); err != nil {
		return err
	}
	written := int64(0)
	defer func() { total.Add(written) }()
	for {
		h, err := r.Peek(framesCeilHeader)
		if err == io.EOF && len(h) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		i, size := binary.LittleEndian.Uint32(h), int(binary.LittleEndian.Uint32(h[4:]))
		if int(i) >= n || size > r.Size()-framesCeilHeader {
			return fmt.Errorf("%s: bad frame header %x", id, h)
		}
		p, err := r.Peek(framesCeilHeader + size)
		if err != nil {
			return err
		}
		if _, err := files[i].Write(p[framesCeilHeader:]); err != nil {
			return err
		}
		_, _ = r.Discard(len(p))
		written += int64(size)
	}
}
