package processor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"

	"thunder/internal/harness"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

func TestHandshakeWelcome(t *testing.T) {
	srv := mustServe(t, "", nil)
	tests := []struct {
		name            string
		compression     []string
		wantCompression string
	}{
		{"plain", nil, ""},
		{"zstd offered", []string{wire.CompressionZstd}, wire.CompressionZstd},
		{"unknown codec only", []string{"lz4"}, ""},
		{"zstd after unknown", []string{"lz4", wire.CompressionZstd}, wire.CompressionZstd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustDial(t, srv.addr)
			w := c.handshake("host-a", tt.compression...)
			if w.Version != wire.Version {
				t.Errorf("Welcome.version = %d, want %d", w.Version, wire.Version)
			}
			if w.Compression != tt.wantCompression {
				t.Errorf("Welcome.compression = %q, want %q", w.Compression, tt.wantCompression)
			}
			// Without checksums, the largest body has no trailer.
			if want := wire.MaxFrameBytes - wire.ChecksumBytes; w.MaxFrameBytes != uint32(want) {
				t.Errorf("Welcome.max_frame_bytes = %d, want %d", w.MaxFrameBytes, want)
			}
			if w.MaxStreams != uint32(processor.DefaultConfig().MaxStreamsPerConn) {
				t.Errorf("Welcome.max_streams = %d, want %d", w.MaxStreams, processor.DefaultConfig().MaxStreamsPerConn)
			}
			if w.Processor != "test-processor" {
				t.Errorf("Welcome.processor = %q, want %q", w.Processor, "test-processor")
			}
		})
	}
}

func TestHandshakeNoCompressionConfigured(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) { c.Compression = nil })
	c := mustDial(t, srv.addr)
	if w := c.handshake("host-a", wire.CompressionZstd); w.Compression != "" {
		t.Errorf("Welcome.compression = %q, want none", w.Compression)
	}
}

func TestHandshakeRefused(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) { c.Token = "s3cret" })
	good := func() *wirepb.Hello {
		return &wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-a", Token: "s3cret"}
	}
	tests := []struct {
		name  string
		hello func(h *wirepb.Hello)
		want  wire.Code
	}{
		{"no versions", func(h *wirepb.Hello) { h.MinVersion, h.MaxVersion = 0, 0 }, wire.CodeVersion},
		{"only newer", func(h *wirepb.Hello) { h.MinVersion, h.MaxVersion = 2, 5 }, wire.CodeVersion},
		{"inverted range", func(h *wirepb.Hello) { h.MinVersion, h.MaxVersion = 2, 0 }, wire.CodeVersion},
		{"no token", func(h *wirepb.Hello) { h.Token = "" }, wire.CodeAuth},
		{"wrong token", func(h *wirepb.Hello) { h.Token = "s3creT" }, wire.CodeAuth},
		{"token prefix", func(h *wirepb.Hello) { h.Token = "s3cre" }, wire.CodeAuth},
		{"empty name", func(h *wirepb.Hello) { h.Collector = "" }, wire.CodeProtocol},
		{"newline in name", func(h *wirepb.Hello) { h.Collector = "a\nb" }, wire.CodeProtocol},
		{"NUL in name", func(h *wirepb.Hello) { h.Collector = "a\x00b" }, wire.CodeProtocol},
		{"DEL in name", func(h *wirepb.Hello) { h.Collector = "a\x7fb" }, wire.CodeProtocol},
		{"name of 256 bytes", func(h *wirepb.Hello) { h.Collector = strings.Repeat("n", 256) }, wire.CodeProtocol},
		// Version is checked before the token, the token before the name.
		{"bad version and token", func(h *wirepb.Hello) { h.MaxVersion, h.Token = 0, "" }, wire.CodeVersion},
		{"bad token and name", func(h *wirepb.Hello) { h.Token, h.Collector = "", "" }, wire.CodeAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good()
			tt.hello(h)
			c := mustDial(t, srv.addr)
			c.hello(h)
			c.expectError(tt.want)
		})
	}
	t.Run("good", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.hello(good())
		c.mustNext(wire.TypeWelcome, nil)
	})
	t.Run("name of 255 bytes", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		h := good()
		h.Collector = strings.Repeat("n", 255)
		c.hello(h)
		c.mustNext(wire.TypeWelcome, nil)
	})
}

func TestHandshakeInvalidUTF8Name(t *testing.T) {
	srv := mustServe(t, "", nil)
	// proto.Marshal refuses invalid UTF-8 in a string field: encode by hand.
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.VarintType)
	body = protowire.AppendVarint(body, 1)
	body = protowire.AppendTag(body, 2, protowire.VarintType)
	body = protowire.AppendVarint(body, 1)
	body = protowire.AppendTag(body, 3, protowire.BytesType)
	body = protowire.AppendString(body, "a\xffb")
	b := []byte(wire.Preface)
	b = append(b, make([]byte, wire.HeaderBytes)...)
	wire.PutHeader(b[len(wire.Preface):], wire.TypeHello, len(body))
	c := mustDial(t, srv.addr)
	c.write(append(b, body...))
	c.expectError(wire.CodeProtocol)
}

func TestHandshakeNotHello(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	b, err := wire.AppendControl([]byte(wire.Preface), wire.TypePing, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.write(b)
	c.expectError(wire.CodeProtocol)
}

func TestHandshakeBadPreface(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	c.write([]byte("GET / HT")) // exactly the preface's length: all of it is read
	// PROTOCOL.md §3: a bad preface closes the connection after a protocol
	// Error.
	c.expectError(wire.CodeProtocol)
}

func TestHandshakeTimeout(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	t.Run("silent", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.expectClosed() // no Error frame for a timeout
	})
	t.Run("preface only", func(t *testing.T) {
		c := mustDial(t, srv.addr)
		c.write([]byte(wire.Preface))
		c.expectClosed()
	})
}

func TestMaxHandshakes(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := mustServe(t, "", func(c *processor.Config) {
		c.MaxHandshakes = 2
		c.Registerer = reg
	})
	// Connections are accepted in order, so the first two are admitted (and
	// stay in their handshake) before the third is looked at.
	first := mustDial(t, srv.addr)
	second := mustDial(t, srv.addr)
	third := mustDial(t, srv.addr)
	third.expectClosed()
	harness.WaitFor(t, waitTimeout, func() error { // counted just after the close
		if got := metricValue(t, reg, "thunder_processor_refusals_total", "reason", "limit"); got != 1 {
			return fmt.Errorf("refusals_total{reason=limit} = %v, want 1", got)
		}
		return nil
	})
	// The first two are still served.
	first.handshake("host-a")
	second.handshake("host-b")
	// Once they are through, a new connection is admitted. (Welcome is
	// queued just before the handshake slot is released: retry.)
	harness.WaitFor(t, waitTimeout, func() error {
		c := mustDial(t, srv.addr)
		defer c.conn.Close()
		c.hello(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: "host-c"})
		f, err := c.next()
		if err != nil {
			return fmt.Errorf("fourth connection: %v", err)
		}
		if f.Type != wire.TypeWelcome {
			t.Fatalf("fourth connection got %s, want welcome", f.Type)
		}
		return nil
	})
}
