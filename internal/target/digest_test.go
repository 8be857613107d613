package target_test

import (
	"testing"

	"thunder/internal/digest"
	"thunder/internal/stream"
)

func mark(p string) stream.Mark {
	return stream.Mark{Offset: uint64(len(p)), Digest: digest.Checksum([]byte(p))}
}

// A stream's digest is recorded with its committed offset: after a crash
// that loses appended bytes, and after a clean restart, Attach tells where
// and with which digest the stream resumes.
func TestDigestSurvivesRestartAndCrash(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "x.log", 0, o)
	p1 := lines("x", 0, 10)
	mustAppend(t, d, s, o, 0, p1)
	mustCommit(t, d)
	state := snapshotState(t, dir)
	p2 := lines("x", 10, 10)
	mustAppend(t, d, s, o, uint64(len(p1)), p2)
	if _, at, done, err := d.Attach(k, mustName(t, "x.log"), stream.Mark{}, o); err != nil || at != mark(p1+p2) || done != mark(p1) {
		t.Fatalf("Attach = at %+v, done %+v, %v; want %+v, %+v", at, done, err, mark(p1+p2), mark(p1))
	}
	crash(t, d, dir)
	restoreState(t, dir, state)

	d = mustOpen(t, dir)
	_, at, done, err := d.Attach(k, mustName(t, "x.log"), stream.Mark{}, o)
	if err != nil || at != mark(p1) || done != mark(p1) {
		t.Fatalf("Attach after crash = at %+v, done %+v, %v; want both %+v", at, done, err, mark(p1))
	}
	mustClose(t, d)
}

// A collector that knows more than the processor (it delivered elsewhere)
// moves the stream forward, and the processor takes its digest for the
// bytes it never saw.
func TestDigestFromAcked(t *testing.T) {
	d := mustOpen(t, t.TempDir())
	o := &owner{"c"}
	acked := stream.Mark{Offset: 500, Digest: 0xfeedface}
	s, at, done, err := d.Attach(key("c", 1), mustName(t, "x.log"), acked, o)
	if err != nil || at != acked || done != acked {
		t.Fatalf("Attach(acked %+v) = %+v, %+v, %v", acked, at, done, err)
	}
	p := "more\n"
	mustAppend(t, d, s, o, 500, p)
	acks := mustCommit(t, d)
	want := stream.Mark{Offset: 505, Digest: digest.Update(acked.Digest, []byte(p))}
	if a, ok := ackFor(t, acks, s); !ok || a.At != want {
		t.Fatalf("ack = %+v, want %+v", a.At, want)
	}
	mustClose(t, d)
}
