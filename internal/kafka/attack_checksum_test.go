package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/digest"
	"thunder/internal/kafka/kafkatest"
	"thunder/internal/stream"
)

// TestRenameWaitsForCommit (output_test.go) replaces the attack's
// TestAttackKafkaRenameClaimsUncommitted: a renamed stream now waits for
// its old name's lines to be committed, which that test's missing commit
// loop never did.

// TestAttackKafkaLegacyStateDigest: the Kafka twin of the target's
// TestAttackLegacyRecordDigest. A state record of the first version
// (offset, then name) is read with digest 0 (state.go parseStateValue,
// documented in PROTOCOL §10 as "taken as 0"), so after an upgrade every
// stream's Opened.committed_digest is 0 and every later Ack carries
// CRC-32C(lines after the upgrade): never the §13 D of what Kafka holds,
// even when the collector offers the right D in Open.acked_digest at
// exactly that offset. Same fix as for the target: "unknown", not 0, and
// adopt acked_digest at that offset.
func TestAttackKafkaLegacyStateDigest(t *testing.T) {
	c := kafkatest.NewCluster(t)
	cfg := testConfig(t, c)
	k := key("h", 1)
	// What the previous release left: "one" committed, state v1 at 4.
	mustOpen(t, cfg).Close() // creates the state topic as the output wants it
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	state := append([]byte("p1\x00h\x00"), k.ID[:]...)
	for _, rec := range []*kgo.Record{
		{Topic: "a.log", Key: []byte("h/a.log"), Value: []byte("one")},
		{Topic: "thunder-state.p1", Key: state, Value: append([]byte{0, 0, 0, 0, 0, 0, 0, 4}, "a.log"...)},
	} {
		if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()

	o := mustOpen(t, cfg)
	r := run(t, o)
	acked := stream.Mark{Offset: 4, Digest: digest.Checksum([]byte("one\n"))}
	s, at, done, err := o.Attach(k, mustName(t, "a.log"), acked, owner("c"))
	if err != nil {
		t.Fatal(err)
	}
	if at != acked || done != acked {
		t.Errorf("after the upgrade Attach = at %+v, done %+v; Kafka holds \"one\\n\" of the stream, D = %08x", at, done, acked.Digest)
	}
	if err := s.Append(owner("c"), chunk(at.Offset, at.Offset+4, []byte("two\n"))); err != nil {
		t.Fatal(err)
	}
	r.waitAck(t, s, 8)
	r.stop()
	o.Close()
	o2 := mustOpen(t, cfg)
	_, _, done2, err := o2.Attach(k, mustName(t, "a.log"), stream.Mark{}, owner("c"))
	if want := digest.Checksum([]byte("one\ntwo\n")); err != nil || done2.Digest != want {
		t.Errorf("recorded digest at %d = %08x, want %08x (CRC-32C of what Kafka holds)", done2.Offset, done2.Digest, want)
	}
}
