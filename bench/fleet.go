package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"thunder/internal/identity"
	"thunder/internal/linecheck"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// Shape of the fake-collector scenarios (fleet, shard): Data frames of
// fakeFrameLines lines, at most fakeWindow bytes unacknowledged per stream.
const (
	fleetSize      = 1000
	fleetStreamMax = 4 << 20 // bytes per stream at most: ≤ 3.9 GiB in the target
	fakeFrameLines = 10
	fakeWindow     = 64 << 10
	fakeDialers    = 128 // handshakes at once (the processor admits 256)
)

// runFleet plays 1,000 collectors against one processor from this process,
// speaking the protocol directly (docs/PROTOCOL.md): preface and Hello,
// Welcome, Open, Opened, then Data frames of a few lines each with a
// window, counting Acks. It reports the time to connect all of them, the
// acknowledged throughput, and the processor's CPU and RSS.
func (b *bench) runFleet() error {
	plan := make([]fakeSpec, fleetSize)
	for i := range plan {
		id := fmt.Sprintf("c%04d", i)
		plan[i] = fakeSpec{collector: id, streams: []fakeStreamSpec{{name: id + ".log", writer: id}}}
	}
	r, err := b.runFakes("fleet", 1, fleetStreamMax, func([]string) []fakeSpec { return plan })
	if err != nil {
		return err
	}
	tput := r.mibps()
	b.rep.result("fleet", kv{"collectors", fleetSize}, kv{"setup_s", r.setup}, kv{"setup_cpu_processor_s", r.setupCPU[0]},
		kv{"bytes", r.sent}, kv{"secs", r.took}, kv{"MiBps", tput}, kv{"lines_per_s", r.linesPerSec()},
		kv{"frame_lines", fakeFrameLines}, kv{"cpu_processor_cores", r.cores(0)}, kv{"cpu_bench_cores", r.selfCores()},
		kv{"rss_processor_MiB", r.peakMiB(0)}, kv{"verified", "linecheck"}, kv{"quiet", r.quiet})
	b.rep.add("scale: 1,000 collectors", "connect + handshake + open, all 1,000", fmt.Sprintf("%.2f s", r.setup.Seconds()), "",
		fmt.Sprintf("processor CPU %.2f s %s", r.setupCPU[0], quietNote(r.quiet, r.busy)))
	b.rep.add("scale: 1,000 collectors", fmt.Sprintf("Data frames of %d lines, window 64 KiB each, %v", fakeFrameLines, b.liveFor),
		fmt.Sprintf("%.1f MiB/s acked", tput), ratio(tput, b.ceil.pipe),
		fmt.Sprintf("%.0f lines/s; processor %.2f core, peak RSS %.0f MiB; load generator %.2f core; exactly once (linecheck)",
			r.linesPerSec(), r.cores(0), r.peakMiB(0), r.selfCores()))
	return nil
}

// fakeStreamSpec is one file a fake collector streams: its name on the
// wire (and in the target dir) and the linecheck writer id of its lines.
type fakeStreamSpec struct{ name, writer string }

// fakeSpec is one connection of a fake collector to processor proc (an
// index into the scenario's processors), with the streams it carries and
// the bytes each may have unacknowledged (0: fakeWindow).
type fakeSpec struct {
	proc      int
	collector string
	streams   []fakeStreamSpec
	window    int64
}

// fakeRun is what runFakes measured.
type fakeRun struct {
	conns    int
	streams  []int         // streams per processor
	setup    time.Duration // connect + handshake + open, all connections
	setupCPU []float64     // per processor, CPU seconds during setup
	sent     int64         // bytes sent, all acknowledged
	took     time.Duration // first Data frame → last Ack
	cpu      []float64     // per processor, CPU seconds over took
	selfCPU  float64       // this process (the load generator), CPU seconds over took
	peakKiB  []int64       // per processor, VmHWM
	quiet    bool
	busy     float64
}

func (r fakeRun) mibps() float64        { return mibps(r.sent, r.took) }
func (r fakeRun) linesPerSec() float64  { return float64(r.sent/lineBytes) / r.took.Seconds() }
func (r fakeRun) cores(i int) float64   { return r.cpu[i] / r.took.Seconds() }
func (r fakeRun) selfCores() float64    { return r.selfCPU / r.took.Seconds() }
func (r fakeRun) peakMiB(i int) float64 { return float64(r.peakKiB[i]) / 1024 }
func (r fakeRun) totalCores() float64   { return sumOf(r.cpu) / r.took.Seconds() }

func sumOf(xs []float64) (s float64) {
	for _, x := range xs {
		s += x
	}
	return s
}

// joinf formats each element of xs with f and joins them with sep.
func joinf[T any](xs []T, sep string, f func(T) string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = f(x)
	}
	return strings.Join(s, sep)
}

// fakeOutput says where the processors of runFakesTo write and how their
// output is checked once they stopped.
type fakeOutput struct {
	args   func(i int) []string // output flags of processor i
	verify func(expect []linecheck.Expect) error
}

// runFakes starts nprocs processors, each with its own target dir on
// 127.0.0.1:0, connects the fake collectors plan returns for their
// addresses (fakeDialers handshakes at once), lets every connection send
// Data frames for b.liveFor or until each stream sent streamMax bytes,
// waits (bounded) for the last Acks, stops the processors and checks the
// union of the target dirs with linecheck: every line exactly once.
func (b *bench) runFakes(name string, nprocs int, streamMax int64, plan func(addrs []string) []fakeSpec) (fakeRun, error) {
	return b.runFakesTo(name, nprocs, streamMax, plan, nil)
}

// runFakesTo is runFakes with the processors' output given by out (nil:
// a target dir each, checked with linecheck.VerifyAll).
func (b *bench) runFakesTo(name string, nprocs int, streamMax int64, plan func(addrs []string) []fakeSpec, out *fakeOutput) (fakeRun, error) {
	r := fakeRun{streams: make([]int, nprocs), setupCPU: make([]float64, nprocs), cpu: make([]float64, nprocs), peakKiB: make([]int64, nprocs)}
	dir, err := b.scratch(name)
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	procs := make([]*daemon, nprocs)
	dsts := make([]string, nprocs)
	addrs := make([]string, nprocs)
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.kill()
			}
		}
	}()
	if out == nil {
		for i := range dsts {
			dsts[i] = filepath.Join(dir, fmt.Sprintf("dst%d", i))
			if err := os.Mkdir(dsts[i], 0o755); err != nil {
				return r, err
			}
		}
		out = &fakeOutput{
			args: func(i int) []string { return []string{"--target-dir=" + dsts[i]} },
			verify: func(expect []linecheck.Expect) error {
				rep, err := linecheck.VerifyAll(dsts, expect, linecheck.Options{})
				if err != nil {
					return err
				}
				if !rep.OK() {
					return fmt.Errorf("target check: %v %v", rep, rep.Problems)
				}
				return nil
			},
		}
	}
	for i := range procs {
		args := append([]string{"logs-processor", "--listen-address=127.0.0.1:0", fmt.Sprintf("--name=bench-processor-%d", i)}, out.args(i)...)
		if procs[i], err = startDaemon(fmt.Sprintf("processor %d", i), b.bin, filepath.Join(dir, fmt.Sprintf("processor%d.log", i)), args...); err != nil {
			return r, err
		}
	}
	for i, p := range procs {
		if addrs[i], err = p.listenAddr(); err != nil {
			return r, err
		}
	}
	specs := plan(addrs)
	r.conns = len(specs)
	for _, s := range specs {
		r.streams[s.proc] += len(s.streams)
	}
	cpuAll := func() ([]float64, error) {
		v := make([]float64, nprocs)
		for i, p := range procs {
			var err error
			if v[i], err = cpuSeconds(p.pid()); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	r.quiet, r.busy = b.quiet()
	p0, err := cpuAll()
	if err != nil {
		return r, err
	}
	conns := make([]*fakeConn, len(specs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.conn.Close() // benchmark over
			}
		}
	}()
	start := time.Now()
	sem := make(chan struct{}, fakeDialers)
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, s := range specs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = dialFake(addrs[s.proc], s)
		})
	}
	wg.Wait()
	r.setup = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("connect: %w", err)
	}
	p1, err := cpuAll()
	if err != nil {
		return r, err
	}
	for i := range p1 {
		r.setupCPU[i] = p1[i] - p0[i]
	}
	self0, err := cpuSeconds(os.Getpid())
	if err != nil {
		return r, err
	}
	// Data phase: every connection sends for liveFor, or until all its
	// streams reached streamMax.
	stop := make(chan struct{})
	t0 := time.Now()
	for _, c := range conns {
		wg.Go(func() { c.send(stop, streamMax) })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	timer := time.NewTimer(b.liveFor)
	select {
	case <-timer.C:
	case <-finished:
	case <-b.ctx.Done():
	}
	timer.Stop()
	close(stop)
	<-finished
	for _, c := range conns {
		for _, s := range c.streams {
			r.sent += s.sent
		}
	}
	// Wait (bounded) for the last acks.
	deadline := time.Now().Add(time.Minute)
	for {
		var acked int64
		for _, c := range conns {
			for _, s := range c.streams {
				acked += s.acked.Load()
			}
		}
		if acked >= r.sent {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%d of %d bytes acknowledged a minute after the senders stopped", acked, r.sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.took = time.Since(t0)
	p2, err := cpuAll()
	if err != nil {
		return r, err
	}
	self1, err := cpuSeconds(os.Getpid())
	if err != nil {
		return r, err
	}
	r.selfCPU = self1 - self0
	for i := range p2 {
		r.cpu[i] = p2[i] - p1[i]
	}
	for _, c := range conns {
		c.conn.Close() // done: the processor detaches the streams
		<-c.done
		if err := errors.Join(c.sendErr, c.ackErr); err != nil {
			return r, err
		}
	}
	for i, p := range procs {
		u, err := p.stop()
		if err != nil {
			return r, err
		}
		r.peakKiB[i] = u.peakKiB
	}
	var expect []linecheck.Expect
	for _, c := range conns {
		for _, s := range c.streams {
			expect = append(expect, linecheck.Expect{Writer: s.writer, Name: s.name, Lines: uint64(s.sent / lineBytes)})
		}
	}
	return r, out.verify(expect)
}

// fakeStream is one stream of a fake connection, handle = its index + 1.
type fakeStream struct {
	fakeStreamSpec
	sent  int64 // bytes sent, source offsets; owned by send
	acked atomic.Int64
}

// fakeConn is one connection of a fake collector, carrying one or more
// streams, as the real collector does to each processor it needs.
type fakeConn struct {
	id      string // collector name
	conn    net.Conn
	r       *wire.Reader
	streams []*fakeStream
	wake    chan struct{}
	window  int64 // bytes unacknowledged per stream at most
	sendErr error // owned by send
	ackErr  error // owned by readAcks, read after done
	done    chan struct{}
}

// dialFake connects to addr as collector spec.collector and opens its
// streams, handles 1, 2, ….
func dialFake(addr string, spec fakeSpec) (*fakeConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := &fakeConn{id: spec.collector, conn: conn, r: wire.NewReader(conn), wake: make(chan struct{}, 1), window: spec.window, done: make(chan struct{})}
	if c.window <= 0 {
		c.window = fakeWindow
	}
	if err := c.handshake(spec.streams); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{}) // no deadline in the data phase; it is bounded by the caller
	go c.readAcks()
	return c, nil
}

// handshake sends the preface and Hello, reads Welcome, then opens each
// stream and reads its Opened.
func (c *fakeConn) handshake(streams []fakeStreamSpec) error {
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second)) // lifted by dialFake
	out := []byte(wire.Preface)
	key := fakeKey(c.id)
	out, err := wire.AppendControl(out, wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: c.id, Software: "thunder-bench", IdentityKey: identity.Public(key)})
	if err != nil {
		return err
	}
	if _, err := c.conn.Write(out); err != nil {
		return err
	}
	var w wirepb.Welcome
	if err := c.expect(wire.TypeWelcome, &w); err != nil {
		return err
	}
	if len(w.Challenge) > 0 { // prove the name (PROTOCOL.md §3)
		out, err = wire.AppendControl(out[:0], wire.TypeProof, &wirepb.Proof{Signature: identity.Sign(key, w.Challenge, nil, c.id)})
		if err != nil {
			return err
		}
		if _, err := c.conn.Write(out); err != nil {
			return err
		}
	}
	for i, s := range streams {
		sid := make([]byte, 16)
		_, _ = rand.Read(sid) // crypto/rand never fails on Linux
		h := uint32(i + 1)
		if out, err = wire.AppendControl(out[:0], wire.TypeOpen, &wirepb.Open{Handle: h, StreamId: sid, Name: s.name}); err != nil {
			return err
		}
		if _, err := c.conn.Write(out); err != nil {
			return err
		}
		var op wirepb.Opened
		if err := c.expect(wire.TypeOpened, &op); err != nil {
			return err
		}
		if op.Handle != h || op.Offset != 0 {
			return fmt.Errorf("%s: Opened handle %d at %d, want handle %d at 0", c.id, op.Handle, op.Offset, h)
		}
		c.streams = append(c.streams, &fakeStream{fakeStreamSpec: s})
	}
	return nil
}

// fakeKey is the identity key of fake collector id: derived from the id,
// so that every connection of one fake collector proves the same key.
func fakeKey(id string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("thunder bench fake collector " + id))
	return ed25519.NewKeyFromSeed(seed[:])
}

// expect reads one frame of type t into m.
func (c *fakeConn) expect(t wire.Type, m interface{ Reset() }) error {
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

// readAcks records each stream's acknowledged offset until the connection
// closes.
func (c *fakeConn) readAcks() {
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
			if s.Handle < 1 || int(s.Handle) > len(c.streams) {
				continue // not ours: ignored, as the protocol says
			}
			st := c.streams[s.Handle-1]
			if int64(s.Offset) > st.acked.Load() {
				st.acked.Store(int64(s.Offset))
			}
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// send writes Data frames of fakeFrameLines lines, one write(2) each, in
// turn for each stream that has fewer than c.window bytes
// unacknowledged, until stop is closed or every stream sent limit bytes.
func (c *fakeConn) send(stop <-chan struct{}, limit int64) {
	frame := make([]byte, wire.DataPrefixBytes, wire.DataPrefixBytes+fakeFrameLines*lineBytes)
	for {
		select {
		case <-stop:
			return
		default:
		}
		sending, sent := false, false
		for h, s := range c.streams {
			if s.sent >= limit {
				continue
			}
			sending = true
			if s.sent-s.acked.Load() >= c.window {
				continue
			}
			frame = frame[:wire.DataPrefixBytes]
			seq := uint64(s.sent / lineBytes)
			for i := range uint64(fakeFrameLines) {
				frame, _ = linecheck.AppendLine(frame, s.writer, seq+i, lineBytes) // valid id and length
			}
			n := len(frame) - wire.DataPrefixBytes
			wire.PutDataHeader(frame, wire.TypeData, uint32(h+1), uint64(s.sent), uint64(s.sent)+uint64(n), n)
			_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.conn.Write(frame); err != nil {
				c.sendErr = fmt.Errorf("%s: %w", c.id, err)
				return
			}
			s.sent += int64(n)
			sent = true
		}
		if !sending {
			return
		}
		if !sent {
			select {
			case <-c.wake:
			case <-stop:
				return
			case <-c.done:
				return
			}
		}
	}
}
