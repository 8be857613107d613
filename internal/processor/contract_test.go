package processor_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"thunder/internal/kafka"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// outputs are the processor's output setups: the offset rules of
// PROTOCOL §4 hold for each alike, so that the outputs cannot drift apart.
var outputs = []struct {
	name         string
	files, kafka bool
}{
	{"files", true, false},
	{"kafka", false, true},
	{"files and kafka", true, true},
}

// serveOutput starts a processor with the given outputs.
func serveOutput(t *testing.T, files, withKafka bool) *server {
	t.Helper()
	return mustServe(t, "", func(c *processor.Config) {
		if !files {
			c.TargetDir = ""
		}
		if withKafka {
			cl, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)
			kc := kafka.DefaultConfig()
			kc.Brokers = cl.ListenAddrs()
			kc.CommitInterval = 5 * time.Millisecond
			kc.CommitTimeout = 5 * time.Second
			kc.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			c.Kafka = &kc
		}
	})
}

// TestContractRenameUncommitted: a stream opened under a new name while
// bytes it appended are not committed yet resumes after them, Opened.offset
// = max(appended, acked), on the same connection and after a Close; the
// resend would otherwise put the same lines in both names.
func TestContractRenameUncommitted(t *testing.T) {
	for _, out := range outputs {
		for _, closeFirst := range []bool{false, true} {
			name := out.name + map[bool]string{false: ", same connection", true: ", after Close"}[closeFirst]
			t.Run(name, func(t *testing.T) {
				srv := serveOutput(t, out.files, out.kafka)
				c := mustDial(t, srv.addr)
				c.handshake("host")
				id := newID(t)
				if o := c.open(1, id, "one.log", 0); o.Offset != 0 {
					t.Fatalf("Opened = %d, want 0", o.Offset)
				}
				// Sent without waiting for its ack, then the stream is
				// renamed at once: the commit has most likely not run.
				end := c.data(1, 0, "a 0\na 1\na 2\n")
				if closeFirst {
					c.control(wire.TypeClose, &wirepb.Close{Handle: 1})
				}
				o := c.openSkippingAcks(2, id, "two.log", 0)
				if o.Offset != end {
					t.Fatalf("Opened under the new name = %d, want %d (what the old name got)", o.Offset, end)
				}
				end2 := c.data(2, end, "a 3\n")
				c.waitAck(2, end2)
				if out.files {
					srv.stop()
					if got := readFile(t, srv.dir, "one.log"); got != "a 0\na 1\na 2\n" {
						t.Errorf("one.log = %q", got)
					}
					if got := readFile(t, srv.dir, "two.log"); got != "a 3\n" {
						t.Errorf("two.log = %q, want only the line sent after the rename", got)
					}
				}
			})
		}
	}
}

// openSkippingAcks sends Open and returns its Opened, skipping Acks of
// other streams that arrive first.
func (c *client) openSkippingAcks(handle uint32, id []byte, name string, acked uint64) *wirepb.Opened {
	c.t.Helper()
	c.control(wire.TypeOpen, &wirepb.Open{Handle: handle, StreamId: id, Name: name, Acked: acked})
	for {
		f, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for Opened: %v", err)
		}
		switch f.Type {
		case wire.TypeAck:
			continue
		case wire.TypeOpened:
			var o wirepb.Opened
			if err := wire.Decode(f, &o); err != nil {
				c.t.Fatal(err)
			}
			return &o
		default:
			c.t.Fatalf("got %s, want Opened", f.Type)
		}
	}
}
