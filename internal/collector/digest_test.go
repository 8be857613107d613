package collector

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/digest"
	"thunder/internal/tail"
)

// FuzzDigests drives a stream's digest history as the collector does
// (frames sent in order, acks of frame ends, reconnections that resend
// from the acknowledged offset or resume at a frame end, values learnt)
// against a model, the true D at every offset: at must never return a
// wrong digest, must always know the next frame's start, and the marks
// stay ascending, above the acknowledged offset and bounded.
func FuzzDigests(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 1})
	f.Add([]byte{0, 0, 0, 4, 0, 5, 3, 1, 0, 6, 2, 1, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		truth := map[uint64]uint32{0: 0} // D at every frame end, as any send computes it
		var ds digests
		ds.ack(0, 0, true)
		var acked, sent uint64
		var ends []uint64 // frame ends sent above acked, ascending
		for i, op := range ops {
			switch op % 4 {
			case 0, 1: // send a frame of 1 to 64 bytes
				n := uint64(op/4%64 + 1)
				d, ok := ds.at(sent)
				if !ok {
					t.Fatalf("op %d: D(%d) unknown at the next frame's start", i, sent)
				}
				end := sent + n
				want, seen := truth[end]
				nd := digest.Update(d, []byte(strings.Repeat("x", int(n))))
				if !seen {
					// Only offsets reached by one path are used: keep D a
					// function of the offset, as the file makes it.
					want = nd
					truth[end] = nd
				}
				ds.sent(sent, end, want)
				for len(ends) > 0 && ends[len(ends)-1] > sent {
					ends = ends[:len(ends)-1]
				}
				ends = append(ends, end)
				sent = end
			case 2: // ack a frame end
				if len(ends) == 0 {
					continue
				}
				off := ends[int(op/4)%len(ends)]
				d, ok := ds.at(off)
				if !ok {
					d = truth[off] // the processor's, taken
				}
				ds.ack(off, d, true)
				acked = off
				for len(ends) > 0 && ends[0] <= off {
					ends = ends[1:]
				}
			case 3: // reconnect: resume at acked, or at a frame end sent before
				sent = acked
				if len(ends) > 0 && op/4%2 == 1 {
					sent = ends[len(ends)-1]
					if _, ok := ds.at(sent); !ok {
						ds.learn(sent, truth[sent]) // replayed
					}
				}
				for len(ends) > 0 && ends[len(ends)-1] > sent {
					ends = ends[:len(ends)-1]
				}
			}
			for off, want := range truth {
				if d, ok := ds.at(off); ok && d != want {
					t.Fatalf("op %d: at(%d) = %08x, want %08x", i, off, d, want)
				}
			}
			if len(ds.marks) > maxMarks {
				t.Fatalf("op %d: %d marks, bound %d", i, len(ds.marks), maxMarks)
			}
			for j, m := range ds.marks {
				if m.off <= ds.acked.off || j > 0 && m.off <= ds.marks[j-1].off {
					t.Fatalf("op %d: marks %v not ascending above acked %d", i, ds.marks, ds.acked.off)
				}
			}
			if b, ok := ds.below(sent); !ok || b.off > sent || truth[b.off] != b.d {
				t.Fatalf("op %d: below(%d) = %v, %v", i, sent, b, ok)
			}
		}
	})
}

// TestDigestMarksThinned: past maxMarks frames in flight, marks are
// thinned, the newest always kept.
func TestDigestMarksThinned(t *testing.T) {
	var ds digests
	ds.ack(0, 0, true)
	for i := range uint64(3 * maxMarks) {
		ds.sent(i, i+1, uint32(i+1))
		if d, ok := ds.at(i + 1); !ok || d != uint32(i+1) {
			t.Fatalf("after frame %d: at(%d) = %d, %v; want the newest kept", i, i+1, d, ok)
		}
	}
	if len(ds.marks) > maxMarks {
		t.Errorf("%d marks, bound %d", len(ds.marks), maxMarks)
	}
}

// TestReplayMatchesSending: the digest a replay computes from the file at
// any frame end equals the one the frames gave when they were sent, with
// split long lines and a flushed last line, whatever the chunk size the
// sender used.
func TestReplayMatchesSending(t *testing.T) {
	const maxLine = 50
	var b strings.Builder
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		n := rng.IntN(3 * maxLine)
		if i%37 == 0 {
			n = 7 * maxLine // split several times
		}
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), n))
		b.WriteByte('\n')
	}
	b.WriteString("unterminated last line") // flushed
	content := b.String()
	path := filepath.Join(t.TempDir(), "f.log")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sendChunk := range []int{maxLine + 1, 64, 200, 4096} {
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		// Send it as the collector does, remembering D at each frame end.
		buf := make([]byte, sendChunk+2)
		var off int64
		var d uint32
		ends := map[uint64]uint32{}
		for {
			payload, next, res, _, err := tail.Read(file, off, buf, maxLine, true)
			if err != nil {
				t.Fatal(err)
			}
			if res == tail.Nothing {
				break
			}
			d = digest.Update(d, payload)
			off = next
			ends[uint64(off)] = d
		}
		if off != int64(len(content)) {
			t.Fatalf("chunk %d: sent up to %d of %d", sendChunk, off, len(content))
		}
		for _, replayChunk := range []int{maxLine, 128, 4096} {
			c := &Collector{cfg: Config{ChunkBytes: replayChunk, MaxLineBytes: maxLine, WindowBytes: 1 << 20}}
			for end, want := range ends {
				s := &source{f: file}
				s.dig.ack(0, 0, true)
				if got, ok := c.replayTo(s, end); !ok || got != want {
					t.Fatalf("send chunk %d, replay chunk %d: replayTo(%d) = %08x, %v; want %08x", sendChunk, replayChunk, end, got, ok, want)
				}
			}
		}
		s := &source{f: file}
		s.dig.ack(0, 0, true)
		if _, ok := (&Collector{cfg: Config{ChunkBytes: 128, MaxLineBytes: maxLine, WindowBytes: 1 << 20}}).replayTo(s, uint64(len(content))+10); ok {
			t.Errorf("replayTo past the end of the file succeeded")
		}
		_ = file.Close()
	}
}

// TestReplayFlushInMiddle: a last line flushed (sent with a newline added)
// and completed later by its writer is a frame end inside a line in the
// middle of the range: the replay adds that newline again from the
// record's flush points, and without them it would not.
func TestReplayFlushInMiddle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.log")
	if err := os.WriteFile(path, []byte("one\nabc"), 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	buf := make([]byte, 4096+2)
	payload, next, _, _, _ := tail.Read(file, 0, buf, 100, true)
	d := digest.Update(0, payload)
	payload, next, res, _, _ := tail.Read(file, next, buf, 100, true)
	if res != tail.Flushed || next != 7 {
		t.Fatalf("tail.Read = %q, %d, %v; want the flushed last line", payload, next, res)
	}
	d = digest.Update(d, payload)
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("def\nnext\n"); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	payload, next, _, _, _ = tail.Read(file, 7, buf, 100, false)
	d = digest.Update(d, payload)

	c := &Collector{cfg: Config{ChunkBytes: 4096, MaxLineBytes: 100}}
	s := &source{f: file}
	s.rec.Flushes = []uint64{7}
	if got, ok := c.replay(s, mark{}, uint64(next), 1<<20); !ok || got != d {
		t.Errorf("replay with the flush point = %08x, %v; want %08x", got, ok, d)
	}
	s.rec.Flushes = nil
	if got, _ := c.replay(s, mark{}, uint64(next), 1<<20); got == d {
		t.Errorf("replay without the flush point gave the sent digest: the test proves nothing")
	}
}
