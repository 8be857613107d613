//go:build unix

package e2e_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/linecheck"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

const (
	// hostileTimeout bounds every wait of a hostile client for the
	// processor's answer or close.
	hostileTimeout = 15 * time.Second
	// hostileToken is the shared token of TestHostileClients.
	hostileToken = "s3cret-hostile-token"
	// idleConns is how many silent connections the hostile client opens at once.
	idleConns = 200
)

// waitLogRE waits until a line of d's log matches re, and logs it.
func waitLogRE(t *testing.T, timeout time.Duration, d *Daemon, re *regexp.Regexp, running ...*Daemon) {
	t.Helper()
	harness.WaitFor(t, timeout, func() error {
		for line := range strings.Lines(d.LogText()) {
			if re.MatchString(line) {
				t.Logf("%s logged: %.300s", d.Name, strings.TrimSpace(line))
				return nil
			}
		}
		return fmt.Errorf("%s: log does not match %v", d.Name, re)
	}, running...)
}

// targetDataBytes sums the sizes of the regular files under dir, the state dir
// excepted: a cheap sign that data flows.
func targetDataBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file may come and go; this is a progress sign only
		}
		if d.IsDir() && d.Name() == linecheck.StateDir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// checkConfined fails the test if outside holds anything, if the state dir
// of target holds anything but the state store, or if target holds a
// regular file not in allowed (slash-separated paths).
func checkConfined(t *testing.T, target, outside string, allowed map[string]bool) {
	t.Helper()
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("outside dir holds %s: written through an escape", e.Name())
	}
	ents, err = os.ReadDir(filepath.Join(target, linecheck.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "state.db" && e.Name() != "known_collectors" && e.Name() != "generation" {
			t.Errorf("state dir holds %s, want only state.db, generation and known_collectors", e.Name())
		}
	}
	err = filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(target, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && rel == linecheck.StateDir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && !allowed[rel] {
			t.Errorf("target holds unexpected file %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A hostileConn is a raw connection to the processor that speaks the
// protocol as badly as a test wants, failing the test only where the
// processor must answer.
type hostileConn struct {
	t    *testing.T
	name string
	pc   *peer.Conn
	conn *net.TCPConn
	r    *wire.Reader
	// collector is the name it claims in Hello, key the key it proves it
	// with (by default the same for every connection, as a collector's).
	collector string
	key       ed25519.PrivateKey
}

// dialHostile connects to addr; every read and write of the connection
// must be done within hostileTimeout.
func dialHostile(t *testing.T, addr, name string) *hostileConn {
	t.Helper()
	pc, err := peer.Dial(addr, "", hostileTimeout)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	t.Cleanup(func() { _ = pc.Close() }) // may be closed already
	pc.ReadTimeout, pc.WriteTimeout = 0, 0
	_ = pc.SetDeadline(time.Now().Add(hostileTimeout))
	return &hostileConn{t: t, name: name, pc: pc, conn: pc.Conn.(*net.TCPConn), r: pc.R, collector: "hostile", key: peer.Key("hostile")}
}

// write sends raw bytes. A write error is not a failure: the processor may
// have closed the connection already, which expect then sees.
func (h *hostileConn) write(b []byte) {
	_, _ = h.pc.Write(b)
}

func (h *hostileConn) control(t wire.Type, m proto.Message) []byte {
	h.t.Helper()
	b, err := peer.Control(t, m)
	if err != nil {
		h.t.Fatalf("%s: encode %s: %v", h.name, t, err)
	}
	return b
}

func (h *hostileConn) send(t wire.Type, m proto.Message) { h.write(h.control(t, m)) }

func (h *hostileConn) hello(token string) []byte {
	h.t.Helper()
	h.pc.Key = h.key
	b, err := h.pc.HelloBytes(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: h.collector, Token: token, Software: "hostile"})
	if err != nil {
		h.t.Fatalf("%s: encode Hello: %v", h.name, err)
	}
	return b
}

// welcome completes a valid handshake: Hello, Welcome, and the Proof of
// its challenge (PROTOCOL.md §3), which the processor may still refuse.
func (h *hostileConn) welcome() {
	h.t.Helper()
	h.write(h.hello(hostileToken))
	var w wirepb.Welcome
	if err := h.pc.Expect(wire.TypeWelcome, &w); err != nil {
		h.t.Fatalf("%s: %v", h.name, err)
	}
	_ = h.pc.Prove(&w, h.collector) // a write error shows at the next read
}

// open opens a stream and returns the offset of its Opened.
func (h *hostileConn) open(handle uint32, name string) uint64 {
	h.t.Helper()
	o, err := h.pc.Open(handle, streamID(name), name, 0)
	if err != nil {
		h.t.Fatalf("%s: %v", h.name, err)
	}
	return o.Offset
}

// data sends a Data frame.
func (h *hostileConn) data(handle uint32, offset, end uint64, payload string) {
	h.write(peer.DataFrame(wire.TypeData, handle, offset, end, []byte(payload)))
}

// expect reads until the processor closes the connection. With want != 0
// it must have sent an Error with that code first; with want == 0 an Error
// of any code, or none, is fine. Frames before the Error (Welcome, Opened)
// are skipped.
func (h *hostileConn) expect(want wire.Code) {
	h.t.Helper()
	got, err := h.pc.ReadToClose()
	if err != nil {
		h.t.Errorf("%s: %v (within %v)", h.name, err, hostileTimeout)
		return
	}
	switch {
	case want == 0:
		if got != nil {
			h.t.Logf("%s: closed after Error %s: %.200s", h.name, wire.Code(got.Code), got.Message)
		} else {
			h.t.Logf("%s: closed without Error", h.name)
		}
	case got == nil:
		h.t.Errorf("%s: closed without Error, want code %s", h.name, want)
	case wire.Code(got.Code) != want:
		h.t.Errorf("%s: Error code %s (%s), want %s", h.name, wire.Code(got.Code), got.Message, want)
	default:
		h.t.Logf("%s: refused with %s: %.200s", h.name, want, got.Message)
	}
	_ = h.conn.Close() // done with it
}

// streamID derives a 16-byte stream id from s.
func streamID(s string) []byte {
	id := make([]byte, 16)
	copy(id, fmt.Sprintf("%016x", len(s)))
	for i := range len(s) {
		id[i%16] ^= s[i]
	}
	return id
}

// openFDs returns the number of open descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	return len(ents)
}

// TestHostileClients attacks a processor with raw connections that speak
// the protocol badly while a legitimate collector streams alongside: every
// bad connection must be refused (an Error frame or a close), the
// processor must survive, the collector must deliver every line exactly
// once, and nothing may be written outside the target dir or into its
// state dir.
func TestHostileClients(t *testing.T) {
	skipShort(t)
	base := t.TempDir()
	target, outside, src := filepath.Join(base, "target"), filepath.Join(base, "outside"), filepath.Join(base, "src")
	for _, d := range []string{target, outside, src} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Symlinks planted in the target dir that lead out of it.
	if err := os.Symlink(outside, filepath.Join(target, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "victim.log"), filepath.Join(target, "link.log")); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(base, "token")
	if err := os.WriteFile(tokenFile, []byte(hostileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	p := startProcessor(t, target, "--handshake-timeout=2s", "--auth-token-file="+tokenFile)
	c := startCollector(t, "legit", src, offsetsDB(t), p.Addr, "--auth-token-file="+tokenFile)
	const lines = 40_000 // 20 s at the rate below: streaming through every attack
	specs := []writerSpec{
		{ID: "legit-a", Dir: src, Name: "a.log", Contract: linecheck.OpenWriteClose, Lines: lines, Rate: writerRate},
		{ID: "legit-b", Dir: src, Name: "sub/b.log", Contract: linecheck.LockedAppend, Lines: lines, Rate: writerRate},
	}
	w := startWriters(t, specs...)
	waitLines(t, 30*time.Second, target, 100, p, c)

	// A 5,000-byte name, and one with a component over 255 bytes.
	long := strings.Repeat("a/", 2500)[:4999] + "x"
	longComponent := strings.Repeat("y", 300) + ".log"
	cases := []struct {
		name string
		want wire.Code // 0: an Error of any code, or a plain close
		run  func(h *hostileConn)
	}{
		{"traversal ../x", wire.CodeName, openName("../x")},
		{"absolute /etc/x", wire.CodeName, openName("/etc/x")},
		{"traversal a/../../x", wire.CodeName, openName("a/../../x")},
		{"traversal to outside", wire.CodeName, openName("x/../../outside/x")},
		{"state db", wire.CodeName, openName(".thunder/state.db")},
		{"state dir via ./", wire.CodeName, openName("./.thunder/x")},
		{"state dir itself", wire.CodeName, openName(".thunder")},
		{"NUL in name", wire.CodeName, openName("a\x00b.log")},
		{"5000-byte name", wire.CodeName, openName(long)},
		{"long component", wire.CodeName, openName(longComponent)},
		{"control char", wire.CodeName, openName("a\x01b.log")},
		{"newline in name", wire.CodeName, openName("a\nb.log")},
		{"C1 control", wire.CodeName, openName("a\u0085b.log")},
		{"invalid UTF-8", wire.CodeProtocol, func(h *hostileConn) {
			// The Go encoder refuses invalid UTF-8 in a string field: encode by hand.
			h.welcome()
			body := protowire.AppendTag(nil, 1, protowire.VarintType)
			body = protowire.AppendVarint(body, 1)
			body = protowire.AppendTag(body, 2, protowire.BytesType)
			body = protowire.AppendBytes(body, streamID("utf8"))
			body = protowire.AppendTag(body, 3, protowire.BytesType)
			body = protowire.AppendString(body, "a\xffb.log")
			b := make([]byte, wire.HeaderBytes, wire.HeaderBytes+len(body))
			wire.PutHeader(b, wire.TypeOpen, len(body))
			h.write(append(b, body...))
		}},
		{"backslash", wire.CodeName, openName(`..\x.log`)},
		{"trailing slash", wire.CodeName, openName("dir/")},
		{"empty name", wire.CodeName, openName("")},
		{"dot", wire.CodeName, openName(".")},
		{"symlinked dir", wire.CodeName, openAndWrite("escape/x.log")},
		{"symlinked file", wire.CodeName, openAndWrite("link.log")},
		{"4 GiB header in handshake", wire.CodeProtocol, func(h *hostileConn) {
			h.write(append([]byte(wire.Preface), 0xff, 0xff, 0xff, 0xff, byte(wire.TypeHello)))
		}},
		{"4 GiB data header", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.write([]byte{0xff, 0xff, 0xff, 0xff, byte(wire.TypeData)})
		}},
		{"oversized control frame", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			var hdr [wire.HeaderBytes]byte
			wire.PutHeader(hdr[:], wire.TypeOpen, wire.MaxControlBytes+1)
			h.write(hdr[:])
		}},
		{"empty frame", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.write([]byte{0, 0, 0, 0, byte(wire.TypeOpen)})
		}},
		{"truncated frame then close", 0, func(h *hostileConn) {
			h.welcome()
			b := h.control(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: streamID("t"), Name: "t.log"})
			h.write(b[:len(b)/2])
			_ = h.conn.CloseWrite()
		}},
		{"truncated header then close", 0, func(h *hostileConn) {
			h.write([]byte(wire.Preface + "\x00\x00"))
			_ = h.conn.CloseWrite()
		}},
		{"garbage instead of preface", 0, func(h *hostileConn) {
			h.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}},
		{"preface then garbage", wire.CodeProtocol, func(h *hostileConn) {
			h.write([]byte(wire.Preface + "\x00\x00\x00\x06\xeeHELLO garbage garbage"))
		}},
		{"undecodable hello", wire.CodeProtocol, func(h *hostileConn) {
			b := []byte(wire.Preface + "\x00\x00\x00\x05\x01\xff\xff\xff\xff")
			h.write(b)
		}},
		{"data before hello", wire.CodeProtocol, func(h *hostileConn) {
			h.write([]byte(wire.Preface))
			h.data(1, 0, 6, "hello\n")
		}},
		{"no common version", wire.CodeVersion, func(h *hostileConn) {
			h.write(append([]byte(wire.Preface), h.control(wire.TypeHello, &wirepb.Hello{MinVersion: 2, MaxVersion: 9, Collector: "hostile", Token: hostileToken})...))
		}},
		{"wrong token", wire.CodeAuth, func(h *hostileConn) { h.write(h.hello("not-the-token")) }},
		{"no token", wire.CodeAuth, func(h *hostileConn) { h.write(h.hello("")) }},
		{"bad collector name", wire.CodeProtocol, func(h *hostileConn) {
			h.write(append([]byte(wire.Preface), h.control(wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "evil\nname", Token: hostileToken})...))
		}},
		{"second hello", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.send(wire.TypeHello, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "hostile", Token: hostileToken})
		}},
		{"unknown frame type", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.write([]byte{0, 0, 0, 1, 200})
		}},
		{"handle 0", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.send(wire.TypeOpen, &wirepb.Open{Handle: 0, StreamId: streamID("h0"), Name: "hostile/h0.log"})
		}},
		{"duplicate handle", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.open(3, "hostile/dup1.log")
			h.send(wire.TypeOpen, &wirepb.Open{Handle: 3, StreamId: streamID("dup2"), Name: "hostile/dup2.log"})
		}},
		{"short stream id", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.send(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: []byte("short"), Name: "hostile/id.log"})
		}},
		{"data for unknown handle", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.data(77, 0, 6, "hello\n")
		}},
		{"data end equals offset", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			off := h.open(1, "hostile/eq.log")
			h.data(1, off, off, "hello\n")
		}},
		{"data end before offset", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			off := h.open(1, "hostile/lt.log")
			h.data(1, off+10, off+4, "hello\n")
		}},
		{"data too short for its header", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.write([]byte{0, 0, 0, 4, byte(wire.TypeData), 0, 0, 1})
		}},
		{"data covering more than 4 MiB", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			off := h.open(1, "hostile/big.log")
			h.data(1, off, off+wire.MaxPayloadBytes+1, "hello\n")
		}},
		{"data at the wrong offset", wire.CodeOffset, func(h *hostileConn) {
			h.welcome()
			off := h.open(1, "hostile/off.log")
			h.data(1, off+10, off+16, "hello\n")
		}},
		{"payload without newline", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			off := h.open(1, "hostile/nl.log")
			h.data(1, off, off+5, "hello")
		}},
		{"compressed data not negotiated", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			off := h.open(1, "hostile/zstd.log")
			b := make([]byte, wire.DataPrefixBytes+6)
			wire.PutDataHeader(b, wire.TypeDataZstd, 1, off, off+6, 6, false)
			copy(b[wire.DataPrefixBytes:], "hello\n")
			h.write(b)
		}},
		{"pong from collector", wire.CodeProtocol, func(h *hostileConn) {
			h.welcome()
			h.send(wire.TypePong, nil)
		}},
		{"steal legit stream name, then bad offset", wire.CodeOffset, func(h *hostileConn) {
			// Another collector name writing to a legitimate file: allowed
			// (names are shared), but it must not corrupt it.
			h.welcome()
			off := h.open(1, "a.log")
			h.data(1, off+1, off+7, "evil!\n")
		}},
	}
	for _, tc := range cases {
		h := dialHostile(t, p.Addr, tc.name)
		tc.run(h)
		h.expect(tc.want)
		if !p.Running() {
			t.Fatalf("processor exited after %q: %v", tc.name, p.Err())
		}
	}

	slowloris(t, p.Addr)
	idleFlood(t, p, target)

	expect := w.Wait()
	waitDelivered(t, target, expect, linecheck.Options{}, p, c)
	if !c.Running() {
		t.Fatal("legitimate collector exited")
	}

	logs := p.LogText()
	for _, re := range []string{
		`collector refused.*code=name`, `collector refused.*code=auth`, `collector refused.*code=offset`,
		`collector refused.*code=protocol`, `collector refused.*code=version`, `collector timed out`,
		`frame too large`, `bad connection preface`,
	} {
		if !regexp.MustCompile(re).MatchString(logs) {
			t.Errorf("processor log does not match %q", re)
		}
	}
	c.Stop()
	p.Stop()
	finalCheck(t, target, expect, linecheck.Options{})
	checkConfined(t, target, outside, map[string]bool{"a.log": true, "sub/b.log": true})
	for _, link := range []string{"escape", "link.log"} {
		fi, err := os.Lstat(filepath.Join(target, link))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("planted symlink %s: replaced (%v)", link, err)
		}
	}
}

// openName returns a hostile case that opens a stream under name.
func openName(name string) func(h *hostileConn) {
	return func(h *hostileConn) {
		h.welcome()
		h.send(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: streamID(name), Name: name})
	}
}

// openAndWrite returns a hostile case that opens a stream under name, which
// passes the name rules, and writes a line to it.
func openAndWrite(name string) func(h *hostileConn) {
	return func(h *hostileConn) {
		h.welcome()
		off := h.open(1, name)
		h.data(1, off, off+6, "owned\n")
	}
}

// slowloris sends the preface one byte a second: the processor must close
// the connection after its handshake timeout (2 s), before the preface is
// complete.
func slowloris(t *testing.T, addr string) {
	t.Helper()
	h := dialHostile(t, addr, "slowloris")
	closed := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, h.conn) // returns when the processor closes
		closed <- time.Now()
	}()
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Second) // the attack's own pace, not a wait
	defer tick.Stop()
	var end time.Time
loop:
	for sent < len(wire.Preface) {
		h.write([]byte{wire.Preface[sent]})
		sent++
		select {
		case end = <-closed:
			break loop
		case <-tick.C:
		}
	}
	if end.IsZero() {
		select {
		case end = <-closed:
		case <-time.After(hostileTimeout):
			t.Fatalf("slowloris: still open %v after sending the whole preface", time.Since(start))
		}
	}
	took := end.Sub(start)
	t.Logf("slowloris: closed after %v and %d bytes", took.Round(time.Millisecond), sent)
	if sent >= len(wire.Preface) {
		t.Errorf("slowloris: the processor waited for the whole preface (%v), want a close after the 2 s handshake timeout", took)
	}
	if took < time.Second {
		t.Errorf("slowloris: closed after %v, before the 2 s handshake timeout", took)
	}
	_ = h.conn.Close()
}

// idleFlood opens idleConns connections that never send anything. They must
// all be closed after the handshake timeout, the processor's descriptors
// must come back down, and the legitimate collector must keep delivering
// meanwhile.
func idleFlood(t *testing.T, p *Daemon, target string) {
	t.Helper()
	pid := p.Pid()
	fdsBefore := openFDs(t, pid)
	before := targetDataBytes(target)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open, timedOut int
	var last time.Duration
	for i := range idleConns {
		c, err := net.DialTimeout("tcp", p.Addr, hostileTimeout)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		mu.Lock()
		open++
		mu.Unlock()
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(hostileTimeout))
			_, err := io.Copy(io.Discard, c)
			mu.Lock()
			defer mu.Unlock()
			open--
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					timedOut++
				}
			}
			last = max(last, time.Since(start))
		})
	}
	// Delivery must continue while the idle connections are open.
	var grew bool
	harness.WaitFor(t, hostileTimeout, func() error {
		mu.Lock()
		stillOpen := open
		mu.Unlock()
		if n := targetDataBytes(target); n > before {
			grew = grew || stillOpen > 0
			return nil
		}
		return fmt.Errorf("target stuck at %d bytes with %d idle connections open", before, stillOpen)
	}, p)
	wg.Wait()
	t.Logf("idle flood: %d connections closed within %v; %d timed out on our side", idleConns, last.Round(time.Millisecond), timedOut)
	if timedOut > 0 {
		t.Errorf("idle flood: %d of %d idle connections not closed by the processor within %v", timedOut, idleConns, hostileTimeout)
	}
	if !grew {
		t.Error("idle flood: no delivery observed while the idle connections were open")
	}
	// The processor's descriptors come back down once it closed them.
	harness.WaitFor(t, 10*time.Second, func() error {
		if n := openFDs(t, pid); n > fdsBefore+10 {
			return fmt.Errorf("processor holds %d descriptors, %d before the flood", n, fdsBefore)
		}
		return nil
	}, p)
}
