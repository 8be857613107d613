package collector_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// ledger is what a fake processor holds: per stream id the bytes appended
// to it, each append committed and acknowledged at once. Shared by the
// connections of one fake.
type ledger struct {
	mu      sync.Mutex
	held    map[string][]byte // stream id → bytes appended
	streams []string          // stream ids that got data, in order
	bad     []string          // what an honest processor would call loss or duplication
}

func newLedger() *ledger { return &ledger{held: make(map[string][]byte)} }

func (lg *ledger) failf(format string, args ...any) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.bad = append(lg.bad, fmt.Sprintf(format, args...))
}

func (lg *ledger) size(id string) uint64 {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return uint64(len(lg.held[id]))
}

// append appends d to stream id if it starts where the stream ends.
func (lg *ledger) append(id string, d wire.Data) bool {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	held := lg.held[id]
	if d.Offset != uint64(len(held)) {
		lg.bad = append(lg.bad, fmt.Sprintf("stream %x: data at %d, the stream ends at %d", id, d.Offset, len(held)))
		return false
	}
	if _, ok := lg.held[id]; !ok {
		lg.streams = append(lg.streams, id)
	}
	lg.held[id] = append(held, d.Payload...)
	return true
}

// check returns nil once the ledger holds exactly want in one stream, and
// fatal when that can never happen any more.
func (lg *ledger) check(want string) (fatal bool, err error) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	switch {
	case len(lg.bad) > 0:
		return true, fmt.Errorf("fake processor saw: %s", strings.Join(lg.bad, "; "))
	case len(lg.streams) > 1:
		return true, fmt.Errorf("%d streams got data, want 1: the file was sent again as a new stream", len(lg.streams))
	case len(lg.streams) == 0:
		return false, fmt.Errorf("no data yet")
	}
	got := lg.held[lg.streams[0]]
	if !strings.HasPrefix(want, string(got)) {
		return true, fmt.Errorf("stream holds %d bytes that are not the file's first bytes", len(got))
	}
	if len(got) != len(want) {
		return false, fmt.Errorf("stream holds %d bytes, want %d", len(got), len(want))
	}
	return false, nil
}

// conduct is how one connection of a ledger fake misbehaves; the zero
// value is an honest processor.
type conduct struct {
	// opened, if set, answers the connection's first Open instead of the
	// ledger: held is what the ledger holds for the stream.
	opened func(held uint64) (offset, committed uint64)
	// data, if set, takes every Data frame instead of the ledger; false
	// ends the connection.
	data func(fc *fakeConn, id string, d wire.Data) bool
}

// serve speaks for the ledger on fc as cd says.
func (lg *ledger) serve(fc *fakeConn, cd conduct) {
	handles := make(map[uint32]string)
	for first := true; ; {
		fr, err := fc.next()
		if err != nil {
			return
		}
		switch fr.Type {
		case wire.TypeOpen:
			var o wirepb.Open
			if wire.Decode(fr, &o) != nil {
				lg.failf("bad Open")
				return
			}
			id := string(o.StreamId)
			handles[o.Handle] = id
			held := lg.size(id)
			if o.Acked > held {
				lg.failf("stream %x: Open.acked %d beyond the %d bytes held: acknowledged what was never committed", id, o.Acked, held)
			}
			off, committed := max(held, o.Acked), held
			if cd.opened != nil && first {
				off, committed = cd.opened(held)
			}
			first = false
			if fc.send(wire.TypeOpened, &wirepb.Opened{Handle: o.Handle, Offset: off, Committed: committed}) != nil {
				return
			}
		case wire.TypeData:
			d, err := wire.ParseData(fr.Body)
			if err != nil {
				lg.failf("bad data frame: %v", err)
				return
			}
			id := handles[d.Handle]
			if cd.data != nil {
				if !cd.data(fc, id, d) {
					return
				}
				continue
			}
			if !lg.append(id, d) {
				return
			}
			ack := &wirepb.Ack{Streams: []*wirepb.StreamAck{{Handle: d.Handle, Offset: d.End}}}
			if fc.send(wire.TypeAck, ack) != nil {
				return
			}
		case wire.TypePing:
			if fc.send(wire.TypePong, nil) != nil {
				return
			}
		}
	}
}

// waitLedger waits until the ledger holds exactly want in one stream,
// failing at once when it never can.
func waitLedger(t *testing.T, lg *ledger, want string) {
	t.Helper()
	harness.WaitFor(t, waitTimeout, func() error {
		fatal, err := lg.check(want)
		if fatal {
			t.Fatal(err)
		}
		return err
	})
}

// waitProtocolError waits until c counted a protocol error.
func waitProtocolError(t *testing.T, c *col) {
	t.Helper()
	waitStats(t, c, func(st collector.Stats) error {
		if st.ProtocolErrors == 0 {
			return fmt.Errorf("Stats().ProtocolErrors = 0, want ≥ 1")
		}
		return nil
	})
}

// TestOpenedBeyondSent: a processor that answers Open with an offset (or
// committed offset) beyond what the collector ever sent, inside the file or
// past its end. The first connection takes one data frame and closes; the
// second lies in its Opened; later ones are honest. The collector must
// count a protocol error, drop the lying link, neither skip (the lie inside
// the file) nor resend the file as a new stream (the lie past its end, once
// taken for a truncation), and deliver every byte exactly once.
func TestOpenedBeyondSent(t *testing.T) {
	const chunk = 4096
	body := lines("w", 0, 400, 100) // 40,000 bytes: ten frames
	size := uint64(len(body))
	tests := []struct {
		name string
		lie  func(held uint64) (offset, committed uint64)
	}{
		{"offset and committed past the file's end", func(held uint64) (uint64, uint64) { return size + 1000, size + 1000 }},
		{"offset inside the file", func(held uint64) (uint64, uint64) { return held + (size-held)/2, held }},
		{"offset and committed inside the file", func(held uint64) (uint64, uint64) {
			mid := held + (size-held)/2
			return mid, mid
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lg := newLedger()
			var mu sync.Mutex
			var opened bool // the first data frame is held: the lie may come
			f := mustFake(t, func(n int, fc *fakeConn) {
				switch n {
				case 0:
					// Takes the first frame, acknowledges nothing, closes.
					lg.serve(fc, conduct{data: func(_ *fakeConn, id string, d wire.Data) bool {
						if lg.append(id, d) {
							mu.Lock()
							opened = true
							mu.Unlock()
						}
						return false
					}})
				case 1:
					lg.serve(fc, conduct{opened: tt.lie})
				default:
					lg.serve(fc, conduct{})
				}
			})
			src := t.TempDir()
			appendFile(t, filepath.Join(src, "a.log"), body)
			cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
			// One frame in flight: what was sent before the lie is one frame.
			cfg.ChunkBytes, cfg.MaxLineBytes, cfg.WindowBytes = chunk, chunk, chunk
			c := mustCollector(t, cfg)
			waitProtocolError(t, c)
			waitLedger(t, lg, body)
			mu.Lock()
			defer mu.Unlock()
			if !opened {
				t.Error("the first connection got no data")
			}
			// The fake holds the data before its Ack reaches the collector.
			harness.WaitFor(t, waitTimeout, func() error {
				if st := c.c.Stats(); st.AckedBytes != size {
					return fmt.Errorf("Stats().AckedBytes = %d, want %d", st.AckedBytes, size)
				}
				return nil
			})
		})
	}
}

// TestAckBeyondSent: a processor that keeps only the first data frame,
// then, once the whole file was sent, acknowledges beyond its end (and a
// handle never opened). The collector must count a protocol error and take
// none of it as acknowledged (it used to take the whole file, lost when
// the next processor resumed from the acknowledged offset); an honest
// processor then gets every byte exactly once.
func TestAckBeyondSent(t *testing.T) {
	body := lines("w", 0, 400, 100)
	size := uint64(len(body))
	lg := newLedger()
	f := mustFake(t, func(n int, fc *fakeConn) {
		if n > 0 {
			lg.serve(fc, conduct{})
			return
		}
		kept := false
		lg.serve(fc, conduct{data: func(fc *fakeConn, id string, d wire.Data) bool {
			if !kept {
				kept = lg.append(id, d)
			}
			if d.End != size {
				return true
			}
			ack := &wirepb.Ack{Streams: []*wirepb.StreamAck{
				{Handle: d.Handle + 100, Offset: 1 << 40}, // never opened: ignored
				{Handle: d.Handle, Offset: size + 1000},   // beyond what was sent
			}}
			_ = fc.send(wire.TypeAck, ack)
			return true // read on until the collector closes
		}})
	})
	src := t.TempDir()
	appendFile(t, filepath.Join(src, "a.log"), body)
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	cfg.ChunkBytes, cfg.MaxLineBytes = 4096, 4096
	c := mustCollector(t, cfg)
	harness.WaitFor(t, waitTimeout, func() error {
		st := c.c.Stats()
		if held := lg.size(lg.first()); st.AckedBytes > held {
			t.Fatalf("Stats().AckedBytes = %d, beyond the %d bytes the processor holds", st.AckedBytes, held)
		}
		if st.ProtocolErrors == 0 {
			return fmt.Errorf("Stats().ProtocolErrors = 0, want ≥ 1")
		}
		return nil
	})
	waitLedger(t, lg, body)
	more := lines("w", 400, 500, 100)
	appendFile(t, filepath.Join(src, "a.log"), more)
	waitLedger(t, lg, body+more)
	harness.WaitFor(t, waitTimeout, func() error { // the Ack follows the ledger
		if st := c.c.Stats(); st.AckedBytes != uint64(len(body+more)) {
			return fmt.Errorf("Stats().AckedBytes = %d, want %d", st.AckedBytes, len(body+more))
		}
		return nil
	})
}

// first returns the id of the first stream that got data, or "".
func (lg *ledger) first() string {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if len(lg.streams) == 0 {
		return ""
	}
	return lg.streams[0]
}

// TestOpenedBeyondFileAfterRestart: a collector delivers a file, stops and
// starts again; before it sent anything, a processor answers its Open with
// an offset past the file's end. The bound is then the file's size: a
// protocol error, never a truncation (which resent the whole file as a new
// stream). After an honest reconnection new lines arrive exactly once.
func TestOpenedBeyondFileAfterRestart(t *testing.T) {
	body := lines("w", 0, 300, 100)
	size := uint64(len(body))
	lg := newLedger()
	f := mustFake(t, func(n int, fc *fakeConn) {
		if n == 1 {
			lg.serve(fc, conduct{opened: func(uint64) (uint64, uint64) { return size + 1000, size + 1000 }})
			return
		}
		lg.serve(fc, conduct{})
	})
	src, db := t.TempDir(), filepath.Join(t.TempDir(), "offsets.db")
	path := filepath.Join(src, "a.log")
	appendFile(t, path, body)
	cfg := baseConfig(t, src, db, f.addr)
	c := mustCollector(t, cfg)
	waitLedger(t, lg, body)
	waitStats(t, c, func(st collector.Stats) error {
		if st.AckedBytes != size {
			return fmt.Errorf("AckedBytes = %d, want %d", st.AckedBytes, size)
		}
		return nil
	})
	c.stop()

	c = mustCollector(t, cfg)
	waitProtocolError(t, c)
	more := lines("w", 300, 400, 100)
	appendFile(t, path, more)
	waitLedger(t, lg, body+more)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, []byte(body+more)) {
		t.Fatalf("source file changed")
	}
}
