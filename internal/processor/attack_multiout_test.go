package processor_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"thunder/internal/harness"
	"thunder/internal/kafka"
	"thunder/internal/kafka/kafkatest"
	"thunder/internal/processor"
)

// TestAttackMultiOutputSkipDigest (held; a passing guard): files and
// Kafka, Kafka's commit of frame B fails while the files commit it. The
// stream resumes at Kafka's offset; the resend of B+C is skipped to C for
// the files (skip) and taken whole by Kafka. Both hold A B C once and the
// Ack's digest is the CRC-32C of A B C, the same in both outputs.
func TestAttackMultiOutputSkipDigest(t *testing.T) {
	cl := kafkatest.NewCluster(t)
	srv := mustServe(t, "", func(c *processor.Config) {
		noIdentity(c)
		kc := kafka.DefaultConfig()
		kc.Brokers = cl.ListenAddrs()
		kc.CommitInterval = 5 * time.Millisecond
		kc.CommitTimeout = 5 * time.Second
		kc.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.Kafka = &kc
	})
	id := newID(t)
	A, B, C := "a 0\na 1\n", "b 0\nb 1\n", "c 0\n"
	a, b := uint64(len(A)), uint64(len(A+B))
	c := dialSealed(t, srv.addr, "host-a")
	c.open(1, id, "m.log", 0, 0)
	c.pc.Write(sealedFrame(1, 0, A))
	if d := c.waitAck(1, a); d != crc(A) {
		t.Fatalf("digest %08x", d)
	}
	fh := cl.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError})
	c.pc.Write(sealedFrame(1, a, B))
	harness.WaitFor(t, waitTimeout, func() error {
		if fh.Hits() == 0 || !strings.Contains(readFile(t, srv.dir, "m.log"), B) {
			return errors.New("no failed Kafka commit yet")
		}
		return nil
	})
	fh.Remove()
	_ = c.pc.Close()

	c = dialSealed(t, srv.addr, "host-a")
	o := c.open(1, id, "m.log", a, crc(A))
	if o.Offset != a || o.GetDigest() != crc(A) {
		t.Fatalf("Opened = %v, want offset %d (Kafka's) with digest %08x", o, a, crc(A))
	}
	_ = b
	c.pc.Write(sealedFrame(1, a, B+C))
	end := uint64(len(A + B + C))
	if d := c.waitAck(1, end); d != crc(A+B+C) {
		t.Errorf("Ack digest %08x, want %08x", d, crc(A+B+C))
	}
	if got := readFile(t, srv.dir, "m.log"); got != A+B+C {
		t.Errorf("m.log = %q", got)
	}
	if got := kafkatest.Values(kafkatest.Consume(t, cl, true, "m.log")); !slices.Equal(got, []string{"a 0", "a 1", "b 0", "b 1", "c 0"}) {
		t.Errorf("Kafka read_committed = %q", got)
	}
	_ = c.pc.Close()
	srv.stop()

	// After a restart both outputs report the same mark.
	srv2 := mustServe(t, srv.dir, func(c *processor.Config) {
		noIdentity(c)
		kc := kafka.DefaultConfig()
		kc.Brokers = cl.ListenAddrs()
		kc.CommitInterval = 5 * time.Millisecond
		kc.CommitTimeout = 5 * time.Second
		kc.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.Kafka = &kc
	})
	c = dialSealed(t, srv2.addr, "host-a")
	if o := c.open(1, id, "m.log", 0, 0); o.Offset != end || o.GetDigest() != crc(A+B+C) || o.GetCommittedDigest() != crc(A+B+C) {
		t.Errorf("Opened after restart = %v, want %d / %08x", o, end, crc(A+B+C))
	}
}
