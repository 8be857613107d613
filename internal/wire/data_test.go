package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"thunder/internal/wire"
)

// rawData builds a data frame body by hand (PROTOCOL.md §5).
func rawData(handle uint32, offset, end uint64, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, handle)
	b = binary.BigEndian.AppendUint64(b, offset)
	b = binary.BigEndian.AppendUint64(b, end)
	return append(b, payload...)
}

// TestParseData checks what the processor checks of a data frame: ParseData,
// then CheckLines on the payload.
func TestParseData(t *testing.T) {
	tests := []struct {
		name      string
		body      []byte
		want      wire.Data
		wantLines bool // CheckLines accepts the payload
	}{
		{"one line", rawData(1, 0, 5, "abcd\n"), wire.Data{Handle: 1, Offset: 0, End: 5, Payload: []byte("abcd\n")}, true},
		{"two lines", rawData(9, 100, 104, "a\nb\n"), wire.Data{Handle: 9, Offset: 100, End: 104, Payload: []byte("a\nb\n")}, true},
		{"split line gets a newline", rawData(2, 10, 14, "abcd\n"), wire.Data{Handle: 2, Offset: 10, End: 14, Payload: []byte("abcd\n")}, true},
		{"handle 0 is not the decoder's business", rawData(0, 0, 1, "\n"), wire.Data{Offset: 0, End: 1, Payload: []byte("\n")}, true},
		{"largest offsets", rawData(math.MaxUint32, math.MaxUint64-1, math.MaxUint64, "\n"), wire.Data{Handle: math.MaxUint32, Offset: math.MaxUint64 - 1, End: math.MaxUint64, Payload: []byte("\n")}, true},
		{"covers the limit", rawData(1, 0, wire.MaxPayloadBytes, "x\n"), wire.Data{Handle: 1, End: wire.MaxPayloadBytes, Payload: []byte("x\n")}, true},
		{"empty payload", rawData(1, 0, 1, ""), wire.Data{Handle: 1, End: 1, Payload: []byte{}}, false},
		{"unterminated payload", rawData(1, 0, 3, "abc"), wire.Data{Handle: 1, End: 3, Payload: []byte("abc")}, false},
		{"unterminated last line", rawData(1, 0, 4, "a\nbc"), wire.Data{Handle: 1, End: 4, Payload: []byte("a\nbc")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.ParseData(tt.body)
			if err != nil {
				t.Fatalf("ParseData(%q) = %v, want %+v", tt.body, err, tt.want)
			}
			if got.Handle != tt.want.Handle || got.Offset != tt.want.Offset || got.End != tt.want.End || !bytes.Equal(got.Payload, tt.want.Payload) {
				t.Errorf("ParseData(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
			err = wire.CheckLines(got.Payload)
			if tt.wantLines != (err == nil) {
				t.Errorf("CheckLines(%q) = %v, want accepted %v", got.Payload, err, tt.wantLines)
			}
			if err != nil && !errors.Is(err, wire.ErrBadData) {
				t.Errorf("CheckLines(%q) = %v, want ErrBadData", got.Payload, err)
			}
		})
	}
}

func TestParseDataRefuses(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"empty body", nil},
		{"short header", rawData(1, 0, 5, "")[:wire.DataHeaderBytes-1]},
		{"end equals offset", rawData(1, 5, 5, "a\n")},
		{"end before offset", rawData(1, 6, 5, "a\n")},
		{"end before offset, wrapped", rawData(1, math.MaxUint64, 0, "a\n")},
		{"covers more than the limit", rawData(1, 0, wire.MaxPayloadBytes+1, "a\n")},
		{"covers all offsets", rawData(1, 0, math.MaxUint64, "a\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := wire.ParseData(tt.body); !errors.Is(err, wire.ErrBadData) {
				t.Errorf("ParseData(%q) = %+v, %v, want ErrBadData", tt.body, got, err)
			}
		})
	}
}

func TestCheckLines(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"\n", true},
		{"a", false},
		{"a\n", true},
		{"a\nb", false},
		{"a\nb\n", true},
		{"\n\n\n", true},
		{"a\x00\n", true},
		{"a\r", false},
	}
	for _, tt := range tests {
		err := wire.CheckLines([]byte(tt.in))
		if (err == nil) != tt.want || (err != nil && !errors.Is(err, wire.ErrBadData)) {
			t.Errorf("CheckLines(%q) = %v, want accepted %v", tt.in, err, tt.want)
		}
	}
}

func TestPutDataHeaderParseData(t *testing.T) {
	tests := []struct {
		name    string
		t       wire.Type
		handle  uint32
		offset  uint64
		end     uint64
		payload string
	}{
		{"data", wire.TypeData, 1, 0, 6, "hello\n"},
		{"data zstd", wire.TypeDataZstd, 2, 1 << 33, 1<<33 + 3, "compressed"},
		{"large values", wire.TypeData, math.MaxUint32, math.MaxUint64 - 2, math.MaxUint64, "a\n"},
		{"flushed last line", wire.TypeData, 3, 10, 12, "ab\n"},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				buf := make([]byte, wire.DataPrefixBytes+len(tt.payload))
				copy(buf[wire.DataPrefixBytes:], tt.payload)
				wire.PutDataHeader(buf, tt.t, tt.handle, tt.offset, tt.end, len(tt.payload), false)
				if want := rawFrame(tt.t, rawData(tt.handle, tt.offset, tt.end, tt.payload)); !bytes.Equal(buf, want) {
					t.Fatalf("PutDataHeader(%s) = %x, want %x", tt.name, buf, want)
				}
				r := wire.NewReader(rd.wrap(bytes.NewReader(buf)))
				defer r.Close()
				f, err := r.Next()
				if err != nil || f.Type != tt.t {
					t.Fatalf("Next(PutDataHeader(%s)) = %v, %v, want %v, nil", tt.name, f.Type, err, tt.t)
				}
				d, err := wire.ParseData(f.Body)
				if err != nil {
					t.Fatalf("ParseData(PutDataHeader(%s)) = %v", tt.name, err)
				}
				if d.Handle != tt.handle || d.Offset != tt.offset || d.End != tt.end || string(d.Payload) != tt.payload {
					t.Errorf("ParseData(PutDataHeader(%s)) = %+v, want %d %d %d %q", tt.name, d, tt.handle, tt.offset, tt.end, tt.payload)
				}
			})
		}
	}
}

func TestPutHeader(t *testing.T) {
	var dst [wire.HeaderBytes]byte
	wire.PutHeader(dst[:], wire.TypeOpen, 300)
	if want := rawHeader(301, wire.TypeOpen); !bytes.Equal(dst[:], want) {
		t.Errorf("PutHeader(open, 300) = %x, want %x", dst, want)
	}
}

func TestDecodedBytes(t *testing.T) {
	enc, dec := newCodecs(t)
	src := bytes.Repeat([]byte("a line\n"), 150)
	z := enc.Append(nil, src)
	if got := dec.DecodedBytes(z); got != len(src) {
		t.Errorf("DecodedBytes(zstd of %d bytes) = %d", len(src), got)
	}
	if got := dec.DecodedBytes([]byte("not zstd")); got != wire.MaxPayloadBytes {
		t.Errorf("DecodedBytes(garbage) = %d, want %d", got, wire.MaxPayloadBytes)
	}
	out, err := dec.Decode(make([]byte, 0, len(src)), z)
	if err != nil || !bytes.Equal(out, src) {
		t.Errorf("Decode into a buffer of DecodedBytes = %d bytes, %v", len(out), err)
	}
	if _, err := dec.Decode(make([]byte, 0, len(src)-1), z); err == nil {
		t.Errorf("Decode into a buffer one byte short succeeded")
	}
}

// newCodecs returns a zstd encoder and a decoder, closed when t ends.
func newCodecs(t *testing.T) (*wire.Encoder, *wire.Decoder) {
	t.Helper()
	enc, err := wire.NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := wire.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dec.Close)
	return enc, dec
}
