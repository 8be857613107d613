package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"thunder/internal/linecheck"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// Fleet shape: fleetSize collectors, each one stream, Data frames of
// fleetFrameLines lines, at most fleetWindow bytes unacknowledged.
const (
	fleetSize       = 1000
	fleetFrameLines = 10
	fleetWindow     = 64 << 10
	fleetDialers    = 128 // handshakes at once (the processor admits 256)
)

// runFleet plays 1,000 collectors against one processor from this process,
// speaking the protocol directly (docs/PROTOCOL.md): preface and Hello,
// Welcome, Open, Opened, then Data frames of a few lines each with a
// window, counting Acks. It reports the time to connect all of them, the
// acknowledged throughput, and the processor's CPU and RSS.
func (b *bench) runFleet() error {
	dir, err := b.scratch("fleet")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dst := filepath.Join(dir, "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	proc, err := startDaemon("processor", b.bin, filepath.Join(dir, "processor.log"),
		"logs-processor", "--target-dir="+dst, "--listen-address=127.0.0.1:0", "--name=bench-processor")
	if err != nil {
		return err
	}
	defer proc.kill()
	addr, err := proc.listenAddr()
	if err != nil {
		return err
	}
	q, busy := b.quiet()
	p0, err := cpuSeconds(proc.pid())
	if err != nil {
		return err
	}
	fleet := make([]*fakeCollector, fleetSize)
	start := time.Now()
	sem := make(chan struct{}, fleetDialers)
	var wg sync.WaitGroup
	errs := make([]error, fleetSize)
	for i := range fleet {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fleet[i], errs[i] = dialFake(addr, i)
		})
	}
	wg.Wait()
	setup := time.Since(start)
	defer func() {
		for _, c := range fleet {
			if c != nil {
				c.conn.Close() // benchmark over
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	p1, err := cpuSeconds(proc.pid())
	if err != nil {
		return err
	}
	// Data phase: every collector sends for liveFor.
	dur := b.liveFor
	stop := make(chan struct{})
	t0 := time.Now()
	for _, c := range fleet {
		wg.Go(func() { c.send(stop) })
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	var sent int64
	for _, c := range fleet {
		sent += c.sent
	}
	// Wait (bounded) for the last acks.
	deadline := time.Now().Add(time.Minute)
	for {
		var acked int64
		for _, c := range fleet {
			acked += c.acked.Load()
		}
		if acked >= sent {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d bytes acknowledged a minute after the senders stopped", acked, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(t0)
	p2, err := cpuSeconds(proc.pid())
	if err != nil {
		return err
	}
	for _, c := range fleet {
		c.conn.Close() // done: the processor detaches the streams
		<-c.done
		if err := errors.Join(c.sendErr, c.ackErr); err != nil {
			return err
		}
	}
	pu, err := proc.stop()
	if err != nil {
		return err
	}
	expect := make([]linecheck.Expect, fleetSize)
	for i, c := range fleet {
		expect[i] = linecheck.Expect{Writer: c.id, Name: c.id + ".log", Lines: uint64(c.sent / lineBytes)}
	}
	rep, err := linecheck.Verify(dst, expect, linecheck.Options{})
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("target check: %v %v", rep, rep.Problems)
	}
	tput := mibps(sent, took)
	b.rep.result("fleet", kv{"collectors", fleetSize}, kv{"setup_s", setup}, kv{"setup_cpu_processor_s", p1 - p0},
		kv{"bytes", sent}, kv{"secs", took}, kv{"MiBps", tput}, kv{"lines_per_s", float64(sent/lineBytes) / took.Seconds()},
		kv{"frame_lines", fleetFrameLines}, kv{"cpu_processor_cores", (p2 - p1) / took.Seconds()},
		kv{"rss_processor_MiB", float64(pu.peakKiB) / 1024}, kv{"verified", "linecheck"}, kv{"quiet", q})
	b.rep.add("scale: 1,000 collectors", "connect + handshake + open, all 1,000", fmt.Sprintf("%.2f s", setup.Seconds()), "",
		fmt.Sprintf("processor CPU %.2f s %s", p1-p0, quietNote(q, busy)))
	b.rep.add("scale: 1,000 collectors", fmt.Sprintf("Data frames of %d lines, window 64 KiB each, %v", fleetFrameLines, dur),
		fmt.Sprintf("%.1f MiB/s acked", tput), ratio(tput, b.ceil.pipe),
		fmt.Sprintf("%.0f lines/s; processor %.2f core, peak RSS %.0f MiB; exactly once (linecheck)",
			float64(sent/lineBytes)/took.Seconds(), (p2-p1)/took.Seconds(), float64(pu.peakKiB)/1024))
	return nil
}

// fakeCollector is one connection of the fleet with one stream (handle 1).
type fakeCollector struct {
	id      string
	conn    net.Conn
	r       *wire.Reader
	sent    int64 // bytes sent, source offsets; owned by send
	acked   atomic.Int64
	wake    chan struct{}
	sendErr error // owned by send
	ackErr  error // owned by readAcks, read after done
	done    chan struct{}
}

// dialFake connects collector i and opens its stream.
func dialFake(addr string, i int) (*fakeCollector, error) {
	id := fmt.Sprintf("c%04d", i)
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := &fakeCollector{id: id, conn: conn, r: wire.NewReader(conn), wake: make(chan struct{}, 1), done: make(chan struct{})}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // lifted below
	out := []byte(wire.Preface)
	if out, err = wire.AppendControl(out, wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: id, Software: "thunder-bench"}); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(out); err != nil {
		conn.Close()
		return nil, err
	}
	if err := c.expect(wire.TypeWelcome, &wirepb.Welcome{}); err != nil {
		conn.Close()
		return nil, err
	}
	sid := make([]byte, 16)
	_, _ = rand.Read(sid) // crypto/rand never fails on Linux
	if out, err = wire.AppendControl(out[:0], wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: sid, Name: id + ".log"}); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(out); err != nil {
		conn.Close()
		return nil, err
	}
	var op wirepb.Opened
	if err := c.expect(wire.TypeOpened, &op); err != nil {
		conn.Close()
		return nil, err
	}
	if op.Offset != 0 {
		conn.Close()
		return nil, fmt.Errorf("%s: Opened at %d, want 0", id, op.Offset)
	}
	_ = conn.SetDeadline(time.Time{}) // no deadline in the data phase; it is bounded by the caller
	go c.readAcks()
	return c, nil
}

// expect reads one frame of type t into m.
func (c *fakeCollector) expect(t wire.Type, m interface{ Reset() }) error {
	f, err := c.r.Next()
	if err != nil {
		return fmt.Errorf("%s: waiting for %s: %w", c.id, t, err)
	}
	if f.Type == wire.TypeError {
		var e wirepb.Error
		_ = wire.Decode(f, &e) // best effort: the message is for the error text
		return fmt.Errorf("%s: processor error %d: %s", c.id, e.Code, e.Message)
	}
	if f.Type != t {
		return fmt.Errorf("%s: got %s, want %s", c.id, f.Type, t)
	}
	switch m := m.(type) {
	case *wirepb.Welcome:
		return wire.Decode(f, m)
	case *wirepb.Opened:
		return wire.Decode(f, m)
	}
	return nil
}

// readAcks records the acknowledged offset until the connection closes.
func (c *fakeCollector) readAcks() {
	defer close(c.done)
	defer c.r.Close()
	for {
		f, err := c.r.Next()
		if err != nil {
			return // closed at the end of the run
		}
		if f.Type != wire.TypeAck {
			c.ackErr = fmt.Errorf("%s: unexpected %s", c.id, f.Type)
			return
		}
		var a wirepb.Ack
		if err := wire.Decode(f, &a); err != nil {
			c.ackErr = err
			return
		}
		for _, s := range a.Streams {
			if s.Handle == 1 && int64(s.Offset) > c.acked.Load() {
				c.acked.Store(int64(s.Offset))
			}
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// send writes Data frames of fleetFrameLines lines, one write(2) each,
// keeping at most fleetWindow bytes unacknowledged, until stop is closed.
func (c *fakeCollector) send(stop <-chan struct{}) {
	frame := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+fleetFrameLines*lineBytes)
	seq := uint64(0)
	for {
		select {
		case <-stop:
			return
		default:
		}
		if c.sent-c.acked.Load() >= fleetWindow {
			select {
			case <-c.wake:
			case <-stop:
				return
			case <-c.done:
				return
			}
			continue
		}
		frame = frame[:wire.DataPrefixBytes]
		for range fleetFrameLines {
			frame, _ = linecheck.AppendLine(frame, c.id, seq, lineBytes) // valid id and length
			seq++
		}
		n := len(frame) - wire.DataPrefixBytes
		wire.PutDataHeader(frame, wire.TypeData, 1, uint64(c.sent), uint64(c.sent)+uint64(n), n)
		_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.conn.Write(frame); err != nil {
			c.sendErr = fmt.Errorf("%s: %w", c.id, err)
			return
		}
		c.sent += int64(n)
	}
}
