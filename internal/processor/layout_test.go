package processor_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"thunder/internal/digest"
	"thunder/internal/layout"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

func mustLayout(t *testing.T, s string) layout.Layout {
	t.Helper()
	l, err := layout.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitAckDigest reads frames until an Ack says handle reached offset, and
// checks its digest is that of want, all the stream's bytes.
func (c *client) waitAckDigest(handle uint32, want string) {
	c.t.Helper()
	for {
		var a wirepb.Ack
		c.mustNext(wire.TypeAck, &a)
		for _, sa := range a.Streams {
			if sa.Handle != handle || sa.Offset < uint64(len(want)) {
				continue
			}
			if sa.Offset != uint64(len(want)) || sa.GetDigest() != digest.Checksum([]byte(want)) {
				c.t.Fatalf("Ack %v, want offset %d digest %08x", sa, len(want), digest.Checksum([]byte(want)))
			}
			return
		}
	}
}

// TestLayoutDateRollover: with {host}/{date}/{file}, two hosts' app.log
// stay apart, a stream's bytes received after midnight (UTC, the injected
// clock) go to the new day's file with the stream's offset and digest
// running on, Verify finds every file as committed, and after a restart
// with another layout the streams continue, from their committed offsets,
// at their new paths.
func TestLayoutDateRollover(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	set := func(s string) {
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		clock.Store(&at)
	}
	set("2026-12-02T23:59:59+00:00")
	dated := func(c *processor.Config) {
		c.Layout = mustLayout(t, "{host}/{date}/{file}")
		c.Clock = func() time.Time { return *clock.Load() }
	}
	srv := mustServe(t, "", dated)
	ids := map[string][]byte{"web-1": newID(t), "web-2": newID(t)}
	conns := map[string]*client{}
	for host, id := range ids {
		c := mustDial(t, srv.addr)
		c.handshake(host)
		if o := c.open(1, id, "app.log", 0); o.Offset != 0 {
			t.Fatalf("Opened at %d", o.Offset)
		}
		c.data(1, 0, host+" one\n")
		c.waitAckDigest(1, host+" one\n")
		conns[host] = c
	}
	set("2026-12-03T00:00:00+00:00")
	for host, c := range conns {
		c.data(1, uint64(len(host+" one\n")), host+" two\n")
		c.waitAckDigest(1, host+" one\n"+host+" two\n")
	}
	for host := range ids {
		for name, want := range map[string]string{"2026-12-02/app.log": host + " one\n", "2026-12-03/app.log": host + " two\n"} {
			if got := readFile(t, srv.dir, host+"/"+name); got != want {
				t.Errorf("%s/%s = %q, want %q", host, name, got, want)
			}
		}
	}
	sum, err := srv.p.Verify(t.Context(), 0, func(processor.VerifyLine) error { return nil })
	if err != nil || !sum.OK || sum.Files != 4 {
		t.Errorf("Verify = %+v, %v; want 4 files ok", sum, err)
	}

	srv.stop()
	srv = mustServe(t, srv.dir, func(c *processor.Config) { c.Layout = mustLayout(t, "{file}") })
	var all string
	for host, id := range ids {
		sent := host + " one\n" + host + " two\n"
		c := mustDial(t, srv.addr)
		c.handshake(host)
		if o := c.open(1, id, "app.log", uint64(len(sent))); o.Offset != uint64(len(sent)) || o.GetDigest() != digest.Checksum([]byte(sent)) {
			t.Fatalf("%s: Opened %v after the restart, want offset %d and the digest of all sent", host, o, len(sent))
		}
		c.data(1, uint64(len(sent)), host+" three\n")
		c.waitAckDigest(1, sent+host+" three\n")
		all += host + " three\n"
	}
	if got := readFile(t, srv.dir, "app.log"); len(got) != len(all) || !strings.Contains(got, "web-1 three\n") || !strings.Contains(got, "web-2 three\n") {
		t.Errorf("app.log under {file} = %q, want both hosts' third line", got)
	}
}

// TestLayoutRefusesHost: a collector whose name is not one path component
// cannot write under {host}: its Open is refused with name.
func TestLayoutRefusesHost(t *testing.T) {
	srv := mustServe(t, "", func(c *processor.Config) {
		c.Layout = mustLayout(t, "{host}/{file}")
		c.Identity = "off"
	})
	c := mustDial(t, srv.addr)
	c.handshake("web-2/..")
	if err := c.pc.Send(wire.TypeOpen, &wirepb.Open{Handle: 1, StreamId: newID(t), Name: "a.log"}); err != nil {
		t.Fatal(err)
	}
	if e := c.expectError(wire.CodeName); !strings.Contains(e.Message, "--target-layout") {
		t.Errorf("refusal %q does not name --target-layout", e.Message)
	}
}

// TestLayoutNeedsTargetDir: a layout is refused without a target dir.
func TestLayoutNeedsTargetDir(t *testing.T) {
	c := processor.DefaultConfig()
	c.Layout = mustLayout(t, "{host}/{file}")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--target-layout") {
		t.Errorf("Validate = %v, want an error naming --target-layout", err)
	}
}
