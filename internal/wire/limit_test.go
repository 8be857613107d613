package wire_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime"
	"slices"
	"testing"

	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// TestReaderLimit checks SetLimit (PROTOCOL.md §2): before authentication
// a processor reads no data frame and no body over MaxHandshakeBytes.
func TestReaderLimit(t *testing.T) {
	hello := mustMarshal(t, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "web-1"})
	tests := []struct {
		name string
		in   []byte
		want error // nil: the frame is returned
	}{
		{"hello", rawFrame(wire.TypeHello, hello), nil},
		{"hello at the limit", rawFrame(wire.TypeHello, make([]byte, wire.MaxHandshakeBytes)), nil},
		{"hello over the limit", rawFrame(wire.TypeHello, make([]byte, wire.MaxHandshakeBytes+1)), wire.ErrFrameTooLarge},
		{"open over the limit", rawHeader(wire.MaxControlBytes+1, wire.TypeOpen), wire.ErrFrameTooLarge},
		{"ping", rawFrame(wire.TypePing, nil), nil},
		{"small data", rawFrame(wire.TypeData, rawData(1, 0, 2, "a\n")), wire.ErrDataRefused},
		{"4 MiB data header", rawHeader(wire.MaxFrameBytes+1, wire.TypeData), wire.ErrDataRefused},
		{"zstd data", rawHeader(100, wire.TypeDataZstd), wire.ErrDataRefused},
		{"4 GiB data header", rawHeader(math.MaxUint32, wire.TypeData), wire.ErrDataRefused},
		{"unknown type", rawFrame(13, []byte("x")), wire.ErrUnknownType},
		{"empty frame", rawHeader(0, wire.TypeHello), wire.ErrEmptyFrame},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := wire.NewReader(rd.wrap(bytes.NewReader(tt.in)))
				defer r.Close()
				r.SetLimit(wire.MaxHandshakeBytes)
				f, err := r.Next()
				switch {
				case tt.want == nil && err != nil:
					t.Fatalf("Next(%s) = %v, want the frame", tt.name, err)
				case tt.want != nil && !errors.Is(err, tt.want):
					t.Fatalf("Next(%s) = %v %d bytes, %v; want %v", tt.name, f.Type, len(f.Body), err, tt.want)
				}
			})
		}
	}
}

// A limited Reader reads nothing past the frame it returns, so what the
// peer sent after its Hello stays in the connection and no read buffer is
// allocated; SetLimit(0) lifts the limit and the rest reads as usual.
func TestReaderLimitUnbuffered(t *testing.T) {
	hello := rawFrame(wire.TypeHello, mustMarshal(t, &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "web-1"}))
	data := rawFrame(wire.TypeData, rawData(1, 0, 2, "a\n"))
	in := bytes.NewReader(slices.Concat([]byte(wire.Preface), hello, data))
	r := wire.NewReader(in)
	defer r.Close()
	r.SetLimit(wire.MaxHandshakeBytes)
	if err := r.ReadPreface(); err != nil {
		t.Fatalf("ReadPreface() = %v", err)
	}
	if f, err := r.Next(); err != nil || f.Type != wire.TypeHello {
		t.Fatalf("Next() = %v, %v; want hello", f.Type, err)
	}
	if got, want := in.Len(), len(data); got != want {
		t.Fatalf("after the hello %d bytes are left unread, want %d (the data frame)", got, want)
	}
	r.SetLimit(0)
	if f, err := r.Next(); err != nil || f.Type != wire.TypeData {
		t.Fatalf("Next() after SetLimit(0) = %v, %v; want data", f.Type, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next() at the end = %v, want io.EOF", err)
	}
}

// A limited Reader allocates nothing large, whatever the header says.
func TestReaderLimitDoesNotAllocate(t *testing.T) {
	for _, ty := range []wire.Type{wire.TypeHello, wire.TypeData} {
		t.Run(ty.String(), func(t *testing.T) {
			r := wire.NewReader(&repeatReader{b: rawHeader(wire.MaxFrameBytes, ty)})
			defer r.Close()
			r.SetLimit(wire.MaxHandshakeBytes)
			const runs = 100
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				if _, err := r.Next(); err == nil {
					t.Fatalf("Next(4 MiB %v header) = nil error", ty)
				}
			}
			runtime.ReadMemStats(&after)
			if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1024 {
				t.Errorf("Next(4 MiB %v header) allocated %d bytes per call, want under 1 KiB", ty, perRun)
			}
		})
	}
}

// OnFrame is told when a frame's first byte arrived, then its body size,
// before the body is read; not for a frame that came whole with the one
// before (nothing of it waits on the connection).
func TestReaderOnFrame(t *testing.T) {
	in := slices.Concat(rawFrame(wire.TypePing, nil), rawFrame(wire.TypeData, rawData(1, 0, 2, "a\n")))
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			r := wire.NewReader(rd.wrap(bytes.NewReader(in)))
			defer r.Close()
			var got []int
			r.OnFrame(func(n int) { got = append(got, n) })
			for {
				if _, err := r.Next(); err != nil {
					if err != io.EOF {
						t.Fatalf("Next() = %v", err)
					}
					break
				}
			}
			want := []int{-1, 0} // the first read brings both frames
			if rd.name == "one byte" {
				want = append(want, -1, wire.DataHeaderBytes+2)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("OnFrame calls = %v, want %v", got, want)
			}
		})
	}
}

// A data frame announced large and sent slowly holds memory for what
// arrived, not for what it announced: here 16 Readers each in the middle of
// a 4 MiB frame of which 1 KiB arrived.
func TestReaderDataGrowsAsItArrives(t *testing.T) {
	const readers, arrived = 16, 1 << 10
	in := append(rawHeader(wire.MaxFrameBytes+1, wire.TypeData), make([]byte, arrived)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range readers {
		r := wire.NewReader(bytes.NewReader(in))
		defer r.Close() // not before the end: each holds its buffer
		if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Next(4 MiB data frame cut after %d bytes) = %v, want io.ErrUnexpectedEOF", arrived, err)
		}
	}
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(readers*(512<<10)); got > limit {
		t.Errorf("%d Readers in 4 MiB frames of which %d bytes arrived allocated %d bytes, want at most %d", readers, arrived, got, limit)
	}
}

// Buffered counts what was read from the connection and not returned yet,
// not the body Next returned last.
func TestReaderBuffered(t *testing.T) {
	ping, data := rawFrame(wire.TypePing, nil), rawFrame(wire.TypeData, rawData(1, 0, 2, "a\n"))
	r := wire.NewReader(bytes.NewReader(slices.Concat(ping, data)))
	defer r.Close()
	if n := r.Buffered(); n != 0 {
		t.Fatalf("Buffered() before any read = %d, want 0", n)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if n := r.Buffered(); n != len(data) {
		t.Fatalf("Buffered() after the first frame = %d, want %d (the second frame)", n, len(data))
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if n := r.Buffered(); n != 0 {
		t.Fatalf("Buffered() after the last frame = %d, want 0", n)
	}
}
