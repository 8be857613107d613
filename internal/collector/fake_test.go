package collector_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// TestErrorReconnectAndWindow: the fake processor refuses the first
// connection with an Error right after Opened; the collector reconnects and
// opens the stream again. On the second connection the fake never
// acknowledges: the collector must stop at its window.
func TestErrorReconnectAndWindow(t *testing.T) {
	const (
		chunk  = 64 << 10
		window = 256 << 10
	)
	var (
		mu       sync.Mutex
		opens    [][]byte // stream id of each Open, by connection
		received atomic.Int64
		pinged   = make(chan struct{})
		pingOnce sync.Once
		bad      atomic.Value // string: a protocol violation seen by the fake
	)
	f := mustFake(t, func(n int, fc *fakeConn) {
		for {
			fr, err := fc.next()
			if err != nil {
				return
			}
			switch fr.Type {
			case wire.TypeOpen:
				var o wirepb.Open
				if err := wire.Decode(fr, &o); err != nil {
					bad.Store(err.Error())
					return
				}
				mu.Lock()
				opens = append(opens, bytes.Clone(o.StreamId))
				mu.Unlock()
				if o.Acked != 0 {
					bad.Store(fmt.Sprintf("Open.acked = %d, nothing was ever acknowledged", o.Acked))
				}
				if fc.send(wire.TypeOpened, &wirepb.Opened{Handle: o.Handle}) != nil {
					return
				}
				if n == 0 {
					_ = fc.send(wire.TypeError, &wirepb.Error{Code: uint32(wire.CodeBusy), Message: "go away", Handle: o.Handle})
					return
				}
			case wire.TypeData, wire.TypeDataZstd:
				if n == 0 {
					continue // raced with the Error
				}
				d, err := wire.ParseData(fr.Body)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				if got := uint64(received.Load()); d.Offset != got {
					bad.Store(fmt.Sprintf("data at %d, want %d", d.Offset, got))
				}
				received.Add(int64(d.End - d.Offset))
			case wire.TypePing:
				if fc.send(wire.TypePong, nil) != nil {
					return
				}
				if n > 0 && received.Load() > 0 {
					pingOnce.Do(func() { close(pinged) })
				}
			default:
				bad.Store(fmt.Sprintf("unexpected %s frame", fr.Type))
			}
		}
	})

	src := t.TempDir()
	// 4 MiB to send, far more than the window.
	appendFile(t, filepath.Join(src, "big.log"), lines("w", 0, 40000, 100))
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), f.addr)
	cfg.ChunkBytes, cfg.MaxLineBytes, cfg.WindowBytes, cfg.Buffers = chunk, chunk, window, 2
	cfg.PingInterval = time.Second
	c := mustCollector(t, cfg)

	// A Ping on the second connection once data flowed means the collector
	// queued nothing for a PingInterval: it is waiting for acks.
	select {
	case <-pinged:
	case <-time.After(waitTimeout):
		t.Fatalf("no Ping after data on the second connection; received %d bytes", received.Load())
	}
	if v := bad.Load(); v != nil {
		t.Fatalf("fake processor saw: %s", v)
	}
	got := received.Load()
	if got > window+chunk {
		t.Errorf("collector sent %d unacknowledged bytes, window %d + chunk %d", got, window, chunk)
	}
	if got < window-chunk {
		t.Errorf("collector stopped at %d unacknowledged bytes, want it to fill the window of %d", got, window)
	}
	st := c.c.Stats()
	if st.Connects < 2 {
		t.Errorf("Stats().Connects = %d, want ≥ 2 (reconnected after the Error)", st.Connects)
	}
	if st.AckedBytes != 0 {
		t.Errorf("Stats().AckedBytes = %d, want 0", st.AckedBytes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(opens) < 2 || !bytes.Equal(opens[0], opens[len(opens)-1]) {
		t.Errorf("Opens by connection = %x, want the same stream opened again", opens)
	}
}
