package processor_test

import (
	"errors"
	"testing"

	"thunder/internal/processor"
	"thunder/internal/target"
)

// TestVerify: with the processor serving, Verify reports the committed
// file and stream, one run at a time, and says so without a target dir.
func TestVerify(t *testing.T) {
	srv := mustServe(t, "", nil)
	c := mustDial(t, srv.addr)
	c.handshake("web-1")
	c.open(1, newID(t), "app/a.log", 0)
	end := c.data(1, 0, "one\ntwo\n")
	c.waitAck(1, end)

	var lines []processor.VerifyLine
	var nested error
	sum, err := srv.p.Verify(t.Context(), 0, func(l processor.VerifyLine) error {
		lines = append(lines, l)
		if nested == nil {
			_, nested = srv.p.Verify(t.Context(), 0, func(processor.VerifyLine) error { return nil })
		}
		return nil
	})
	if err != nil || !sum.OK || sum.Files != 1 || sum.Streams != 1 {
		t.Fatalf("Verify = %+v, %v; want one ok file and one stream", sum, err)
	}
	if !errors.Is(nested, processor.ErrVerifyBusy) {
		t.Errorf("Verify during a Verify = %v, want ErrVerifyBusy", nested)
	}
	var types []string
	for _, l := range lines {
		types = append(types, l.Type)
	}
	if len(lines) != 4 || lines[0].Start == nil || lines[1].File == nil || lines[2].Stream == nil || lines[3].Summary == nil {
		t.Fatalf("Verify lines = %v, want start, file, stream, summary", types)
	}
	if f := lines[1].File; f.Name != "app/a.log" || f.Verdict != target.VerdictOK || f.Size != int64(end) || f.Lines != 2 {
		t.Errorf("file line = %+v", f)
	}
	if s := lines[2].Stream; s.Collector != "web-1" || s.Name != "app/a.log" || s.Bytes != end {
		t.Errorf("stream line = %+v", s)
	}

	kafkaOnly := serveOutput(t, false, true)
	if _, err := kafkaOnly.p.Verify(t.Context(), 0, func(processor.VerifyLine) error { return nil }); !errors.Is(err, processor.ErrNoTargetDir) {
		t.Errorf("Verify of a Kafka-only processor = %v, want ErrNoTargetDir", err)
	}
}
