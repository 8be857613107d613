package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"thunder/internal/digest"
	"thunder/internal/kafka"
	"thunder/internal/kafka/kafkatest"
	"thunder/internal/relpath"
	"thunder/internal/stream"
	"thunder/internal/target"
)

// The output contract: what the processor relies on from every output,
// checked against each through the output interface alone, so that the
// target dir and the Kafka output cannot drift apart again (they did: a
// renamed stream resumed from the record in one and from what was
// appended in the other; Forget checked its owner, unlocked, then queued
// the delete in one, atomically in the other).

// kit drives one kind of output over the same storage across restarts.
type kit struct {
	name string
	// open opens the output on the kit's storage and runs its commit loop.
	open func(t *testing.T) output
	// stop stops the output cleanly: a last commit, then Close.
	stop func(t *testing.T, o output)
	// crash stops the output as kill -9 would after pending appended
	// more, so that none of that is committed, and opens it again.
	crash func(t *testing.T, o output, pending func()) output
	// read returns what the output holds, committed, under name.
	read func(t *testing.T, name string) string
}

// running is an output with its commit loop.
type running struct {
	output
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
}

func run(o output) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{output: o, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = o.Run(ctx) // a fenced Kafka output ends with an error: the tests fence on purpose
	}()
	return r
}

// halt ends the commit loop and closes the output.
func (r *running) halt(t *testing.T) {
	t.Helper()
	r.cancel()
	<-r.done
	if err := r.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
}

func filesKit(t *testing.T) kit {
	dir := t.TempDir()
	statePath := filepath.Join(dir, relpath.StateDir, "state.db")
	genPath := filepath.Join(dir, relpath.StateDir, "generation")
	var k kit
	k.name = "files"
	k.open = func(t *testing.T) output {
		d, err := target.Open(target.Config{Dir: dir, Logger: testLogger(t), CommitInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r := run(files{Dir: d, now: time.Now})
		t.Cleanup(func() { r.cancel(); <-r.done; _ = d.Close() })
		return r
	}
	k.stop = func(t *testing.T, o output) { o.(*running).halt(t) }
	k.crash = func(t *testing.T, o output, pending func()) output {
		// The state as the last commit left it, the files with what was
		// appended since: kill -9 (target's tests do the same).
		r := o.(*running)
		r.cancel()
		<-r.done // nothing was pending: its last commit did nothing
		// Both files of the state dir: the commit generation beside the
		// store alone restored would be a rollback (target's generation.go).
		paths := []string{statePath, genPath}
		snaps := make([][]byte, len(paths))
		for i, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			snaps[i] = b
		}
		pending()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for i, p := range paths {
			if err := os.WriteFile(p, snaps[i], 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return k.open(t)
	}
	k.read = func(t *testing.T, name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return string(b)
	}
	return k
}

func kafkaKit(t *testing.T) kit {
	c := kafkatest.NewCluster(t, kfake.DefaultNumPartitions(1))
	cfg := kafka.DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Processor = "contract"
	cfg.CommitInterval = time.Millisecond
	cfg.CommitTimeout = 5 * time.Second
	var k kit
	k.name = "kafka"
	k.open = func(t *testing.T) output {
		cfg.Logger = testLogger(t)
		o, err := kafka.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := run(kafkaOutput{o})
		t.Cleanup(func() { r.cancel(); <-r.done; _ = o.Close() })
		return r
	}
	k.stop = func(t *testing.T, o output) { o.(*running).halt(t) }
	// The next instance, with the same transactional ID, fences the
	// crashed one: what it appends after is never committed.
	k.crash = func(t *testing.T, _ output, pending func()) output {
		o := k.open(t)
		pending()
		return o
	}
	k.read = func(t *testing.T, name string) string {
		var b strings.Builder
		for _, v := range kafkatest.Values(kafkatest.Consume(t, c, true, strings.ReplaceAll(name, "/", "."))) {
			b.WriteString(v + "\n")
		}
		return b.String()
	}
	return k
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// owner is a stream.Owner that records its acknowledgements.
type owner struct {
	mu   sync.Mutex
	ack  uint64
	mark stream.Mark // the last acknowledged, with its digest
}

func (o *owner) Committed(m stream.Mark) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m.Offset < o.ack {
		panic(fmt.Sprintf("ack went back from %d to %d", o.ack, m.Offset))
	}
	o.ack, o.mark = m.Offset, m
}

// waitAcked waits until the output acknowledged o up to offset.
func (o *owner) waitAcked(t *testing.T, offset uint64) {
	t.Helper()
	if !o.acked(offset, 10*time.Second) {
		t.Fatalf("not acked up to %d after 10 s", offset)
	}
}

// acked reports whether o is acknowledged up to offset within timeout.
func (o *owner) acked(offset uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		o.mu.Lock()
		got := o.ack
		o.mu.Unlock()
		if got >= offset {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// deliver sends content, the stream's bytes from source offset 0, as a
// collector does: attach (acked), send what the output lacks, wait for the
// ack; a stream taken back by a failed commit is attached again.
//
// Every ack carries the stream's digest, which at the end must be the
// CRC-32C of content: the collector's digest of what it acked comes with
// Attach, and the output's of the rest follows.
func deliver(t *testing.T, o output, k stream.Key, name string, acked uint64, content string) (outStream, *owner) {
	t.Helper()
	end := uint64(len(content))
	ackedMark := stream.Mark{Offset: acked, Digest: digest.Checksum([]byte(content[:min(acked, end)]))}
	for range 5 {
		w := &owner{}
		st, at, err := o.Attach(k, cname(t, name), ackedMark, w)
		if err != nil {
			t.Fatalf("Attach(%s, %s, %d) = %v", k, name, acked, err)
		}
		if off := at.Offset; off < end {
			err := st.Append(w, chunk(off, end, []byte(content[off:])))
			if errors.Is(err, stream.ErrNotOwner) {
				continue
			}
			if err != nil {
				t.Fatalf("Append(%d) = %v", off, err)
			}
		}
		if w.acked(end, 5*time.Second) {
			w.mu.Lock()
			m := w.mark
			w.mu.Unlock()
			if want := digest.Checksum([]byte(content)); m.Offset == end && m.Digest != want {
				t.Fatalf("%s acked at %d with digest %08x, want %08x (the CRC-32C of what it holds)", name, end, m.Digest, want)
			}
			return st, w
		}
	}
	t.Fatalf("%s not delivered up to %d in 5 tries", name, end)
	return nil, nil
}

func cname(t *testing.T, s string) relpath.Name {
	t.Helper()
	n, err := relpath.Clean(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ckey(n byte) stream.Key {
	k := stream.Key{Collector: "host"}
	k.ID[0] = n
	return k
}

func attach(t *testing.T, o output, k stream.Key, name string, acked uint64, w stream.Owner) (outStream, uint64) {
	t.Helper()
	st, at, err := o.Attach(k, cname(t, name), stream.Mark{Offset: acked}, w)
	if err != nil {
		t.Fatalf("Attach(%s, %s, %d) = %v", k, name, acked, err)
	}
	return st, at.Offset
}

// chunk is the data frame for [offset, end) with payload p.
func chunk(offset, end uint64, p []byte) stream.Chunk {
	return stream.Chunk{Offset: offset, End: end, Payload: p, Sum: digest.Checksum(p), Lines: bytes.Count(p, newline)}
}

func appendLines(t *testing.T, st outStream, w stream.Owner, offset uint64, lines string) uint64 {
	t.Helper()
	end := offset + uint64(len(lines))
	if err := st.Append(w, chunk(offset, end, []byte(lines))); err != nil {
		t.Fatalf("Append(%d, %q) = %v", offset, lines, err)
	}
	return end
}

// contract runs f against every output.
func contract(t *testing.T, f func(t *testing.T, k kit)) {
	for name, mk := range map[string]func(*testing.T) kit{"files": filesKit, "kafka": kafkaKit} {
		t.Run(name, func(t *testing.T) { f(t, mk(t)) })
	}
}

// TestOutputOffsetRules: data must start where the stream ends, only its
// owner may append, acks reach the owner, and acked from the collector
// moves a stream forward, never back.
func TestOutputOffsetRules(t *testing.T) {
	contract(t, func(t *testing.T, k kit) {
		o := k.open(t)
		w := &owner{}
		st, off := attach(t, o, ckey(1), "a.log", 0, w)
		if off != 0 || st.Offset() != 0 || st.Committed().Offset != 0 {
			t.Fatalf("new stream: Attach = %d, Offset %d, Committed %d; want 0", off, st.Offset(), st.Committed().Offset)
		}
		end := appendLines(t, st, w, 0, "one\n")
		for _, c := range []struct {
			name   string
			w      stream.Owner
			offset uint64
			want   error
		}{
			{"gap", w, end + 1, stream.ErrOffset},
			{"overlap", w, end - 1, stream.ErrOffset},
			{"another owner", &owner{}, end, stream.ErrNotOwner},
		} {
			if err := st.Append(c.w, chunk(c.offset, c.offset+4, []byte("two\n"))); !errors.Is(err, c.want) {
				t.Errorf("%s: Append = %v, want %v", c.name, err, c.want)
			}
		}
		w.waitAcked(t, end)
		if st.Committed().Offset != end {
			t.Errorf("Committed = %d after the ack, want %d", st.Committed().Offset, end)
		}
		// The collector knows of more (delivered elsewhere): start there.
		w2 := &owner{}
		st2, off := attach(t, o, ckey(2), "b.log", 100, w2)
		if off != 100 || st2.Offset() != 100 {
			t.Errorf("Attach(acked 100) = %d, Offset %d; want 100", off, st2.Offset())
		}
		// Less than it holds: keep what it holds.
		if _, off := attach(t, o, ckey(1), "a.log", 1, &owner{}); off != end {
			t.Errorf("Attach(acked 1) of a stream at %d = %d", end, off)
		}
		if got := k.read(t, "a.log"); got != "one\n" {
			t.Errorf("a.log = %q", got)
		}
	})
}

// TestOutputTakeover: a second owner takes the stream over where it ends,
// committed or not; the first can no longer append, and its Detach and
// Forget do nothing to the new owner's stream.
func TestOutputTakeover(t *testing.T) {
	contract(t, func(t *testing.T, k kit) {
		o := k.open(t)
		w1, w2 := &owner{}, &owner{}
		st1, _ := attach(t, o, ckey(1), "a.log", 0, w1)
		end := appendLines(t, st1, w1, 0, "one\n")
		st2, off := attach(t, o, ckey(1), "a.log", 0, w2)
		if off != end {
			t.Fatalf("takeover Attach = %d, want %d (what was appended)", off, end)
		}
		if err := st1.Append(w1, chunk(end, end+4, []byte("old\n"))); !errors.Is(err, stream.ErrNotOwner) {
			t.Fatalf("old owner's Append = %v, want ErrNotOwner", err)
		}
		st1.Detach(w1)
		st1.Forget(w1)
		end = appendLines(t, st2, w2, end, "two\n")
		w2.waitAcked(t, end)
		k.stop(t, o)
		o = k.open(t)
		if _, off := attach(t, o, ckey(1), "a.log", 0, &owner{}); off != end {
			t.Errorf("after restart Attach = %d, want %d: the old owner's Forget dropped the stream", off, end)
		}
		if got := k.read(t, "a.log"); got != "one\ntwo\n" {
			t.Errorf("a.log = %q", got)
		}
	})
}

// TestOutputForgetRace: Forget by an owner racing an Attach by the next
// one never loses the next one's stream record, even once the next one
// let go of it too. (The target dir's Forget used to check its owner,
// unlock, and queue the delete after: a delete the next commit ran once
// the new owner had detached.)
func TestOutputForgetRace(t *testing.T) {
	contract(t, func(t *testing.T, k kit) {
		o := k.open(t)
		var ends [20]uint64
		for i := range ends {
			key := ckey(byte(i + 1))
			name := fmt.Sprintf("r%d.log", i)
			st1, w1 := deliver(t, o, key, name, 0, "one\n")
			var wg sync.WaitGroup
			wg.Go(func() { st1.Forget(w1) })
			w2 := &owner{}
			st2, off := attach(t, o, key, name, 4, w2)
			wg.Wait()
			ends[i] = appendLines(t, st2, w2, off, "two\n")
			if !w2.acked(ends[i], 5*time.Second) {
				// A failed commit took the stream back (Kafka rewinds on a
				// transient produce error): attach again, as a collector would.
				st2, w2 = deliver(t, o, key, name, 0, "one\ntwo\n")
			}
			st2.Detach(w2) // the connection ends: only the record keeps the stream
		}
		k.stop(t, o)
		o = k.open(t)
		for i, end := range ends {
			if _, off := attach(t, o, ckey(byte(i+1)), fmt.Sprintf("r%d.log", i), 0, &owner{}); off != end {
				t.Errorf("stream %d after restart = %d, want %d", i, off, end)
			}
		}
	})
}

// TestOutputForget: a forgotten stream starts over after a restart.
func TestOutputForget(t *testing.T) {
	contract(t, func(t *testing.T, k kit) {
		o := k.open(t)
		w := &owner{}
		st, _ := attach(t, o, ckey(1), "a.log", 0, w)
		w.waitAcked(t, appendLines(t, st, w, 0, "one\n"))
		st.Forget(w)
		k.stop(t, o)
		o = k.open(t)
		if _, off := attach(t, o, ckey(1), "a.log", 0, &owner{}); off != 0 {
			t.Errorf("forgotten stream after restart = %d, want 0", off)
		}
	})
}

// TestOutputRenameUncommitted: a stream attached under a new name while
// the old name's bytes are not committed continues after them: they are
// in the old name, and nothing is in both.
func TestOutputRenameUncommitted(t *testing.T) {
	contract(t, func(t *testing.T, k kit) {
		o := k.open(t)
		w1, w2 := &owner{}, &owner{}
		st1, _ := attach(t, o, ckey(1), "one.log", 0, w1)
		end := appendLines(t, st1, w1, 0, "a 0\na 1\n")
		st2, off := attach(t, o, ckey(1), "two.log", 0, w2)
		if off != end {
			t.Fatalf("Attach under the new name = %d, want %d (what the old name got)", off, end)
		}
		end2 := appendLines(t, st2, w2, end, "a 2\n")
		w2.waitAcked(t, end2)
		k.stop(t, o)
		if one, two := k.read(t, "one.log"), k.read(t, "two.log"); one != "a 0\na 1\n" || two != "a 2\n" {
			t.Errorf("one.log = %q, two.log = %q; want %q, %q", one, two, "a 0\na 1\n", "a 2\n")
		}
		o = k.open(t)
		if _, off := attach(t, o, ckey(1), "two.log", 0, &owner{}); off != end2 {
			t.Errorf("after restart Attach = %d, want %d", off, end2)
		}
	})
}

// TestOutputCrash: after a crash a stream resumes exactly at what was
// acknowledged, and the output holds exactly that: what was appended and
// not committed is gone, nothing acknowledged is.
func TestOutputCrash(t *testing.T) {
	contract(t, func(t *testing.T, k kit) {
		o := k.open(t)
		w := &owner{}
		st, _ := attach(t, o, ckey(1), "a.log", 0, w)
		acked := appendLines(t, st, w, 0, "kept 0\nkept 1\n")
		w.waitAcked(t, acked)
		o = k.crash(t, o, func() { appendLines(t, st, w, acked, "lost 2\n") })
		if _, off := attach(t, o, ckey(1), "a.log", 0, &owner{}); off != acked {
			t.Errorf("after the crash Attach = %d, want %d (what was acknowledged)", off, acked)
		}
		if got := k.read(t, "a.log"); got != "kept 0\nkept 1\n" {
			t.Errorf("a.log after the crash = %q", got)
		}
	})
}
