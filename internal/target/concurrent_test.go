package target_test

import (
	"bufio"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"thunder/internal/target"
)

// TestConcurrentStreams: streams of several collectors append to one name at
// once while commits run. Every payload lands whole, each stream's payloads
// keep their order, and the acks never pass what was appended.
func TestConcurrentStreams(t *testing.T) {
	const (
		collectors = 4
		perColl    = 4
		payloads   = 150
	)
	dir := t.TempDir()
	d := mustOpen(t, dir)

	type feeder struct {
		s     *target.Stream
		o     *owner
		col   int
		id    int
		mu    sync.Mutex
		sent  uint64 // appended
		acked uint64
	}
	var feeders []*feeder
	for c := range collectors {
		o := &owner{fmt.Sprint("conn", c)}
		for i := range perColl {
			s, _, _ := mustAttach(t, d, key(fmt.Sprint("col", c), i), "shared/all.log", 0, o)
			feeders = append(feeders, &feeder{s: s, o: o, col: c, id: i})
		}
	}
	byStream := make(map[*target.Stream]*feeder)
	for _, f := range feeders {
		byStream[f.s] = f
	}

	stop := make(chan struct{})
	var committer sync.WaitGroup
	committer.Go(func() {
		check := func(acks []target.Ack) {
			for _, a := range acks {
				f := byStream[a.Stream]
				f.mu.Lock()
				if a.At.Offset > f.sent || a.At.Offset <= f.acked {
					t.Errorf("ack %s at %d: appended %d, acked before %d", a.Stream.Key, a.At.Offset, f.sent, f.acked)
				}
				f.acked = a.At.Offset
				f.mu.Unlock()
				if a.Owner != f.o {
					t.Errorf("ack %s owner = %v, want %v", a.Stream.Key, a.Owner, f.o)
				}
			}
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			acks, err := d.Commit()
			if err != nil {
				t.Errorf("Commit() = %v", err)
				return
			}
			check(acks)
		}
	})

	var wg sync.WaitGroup
	for _, f := range feeders {
		wg.Go(func() {
			for p := range payloads {
				var b strings.Builder
				n := 1 + (p+f.id)%7
				for l := range n {
					fmt.Fprintf(&b, "c%d s%d p%04d l%d/%d x%s\n", f.col, f.id, p, l, n, strings.Repeat("x", (p*31+l*17)%200))
				}
				// Hold f.mu across Append: a commit may acknowledge the
				// data before Append returns, and check must see it sent.
				f.mu.Lock()
				off := f.sent
				end := off + uint64(b.Len())
				err := f.s.Append(f.o, chunk(off, end, []byte(b.String())))
				if err == nil {
					f.sent = end
				}
				f.mu.Unlock()
				if err != nil {
					t.Errorf("Append(%s, %d) = %v", f.s.Key, off, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	committer.Wait()
	acks, err := target.CloseAcks(d)
	if err != nil {
		t.Fatalf("Close() = %v", err)
	}
	var total uint64
	for _, a := range acks {
		byStream[a.Stream].acked = a.At.Offset
	}
	for _, f := range feeders {
		if f.acked != f.sent {
			t.Errorf("stream %s acked %d, appended %d", f.s.Key, f.acked, f.sent)
		}
		total += f.sent
	}

	// Parse the file: payloads are runs of lines l0..l(n-1) of one stream.
	data := readFile(t, filepath.Join(dir, "shared", "all.log"))
	if uint64(len(data)) != total {
		t.Errorf("file has %d bytes, appended %d", len(data), total)
	}
	next := make(map[[2]int]int) // (collector, stream) → next payload
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(nil, 1<<20)
	var cur struct{ c, s, p, l, n int }
	inPayload := false
	lineNo := 0
	for sc.Scan() {
		lineNo++
		var c, s, p, l, n int
		var pad string
		if _, err := fmt.Sscanf(sc.Text(), "c%d s%d p%d l%d/%d %s", &c, &s, &p, &l, &n, &pad); err != nil {
			t.Fatalf("line %d %q: %v", lineNo, sc.Text(), err)
		}
		if inPayload {
			if c != cur.c || s != cur.s || p != cur.p || l != cur.l+1 || n != cur.n {
				t.Fatalf("line %d %q interleaves payload c%d s%d p%d (at l%d/%d)", lineNo, sc.Text(), cur.c, cur.s, cur.p, cur.l, cur.n)
			}
		} else {
			if l != 0 {
				t.Fatalf("line %d %q starts a payload at l%d", lineNo, sc.Text(), l)
			}
			k := [2]int{c, s}
			if p != next[k] {
				t.Fatalf("line %d: c%d s%d payload %d, want %d (order or duplicate)", lineNo, c, s, p, next[k])
			}
			next[k]++
		}
		cur.c, cur.s, cur.p, cur.l, cur.n = c, s, p, l, n
		inPayload = l+1 < n
	}
	if inPayload {
		t.Errorf("file ends inside a payload")
	}
	for _, f := range feeders {
		if got := next[[2]int{f.col, f.id}]; got != payloads {
			t.Errorf("c%d s%d: %d payloads in file, want %d", f.col, f.id, got, payloads)
		}
	}
}

// TestAttachConcurrentDeadlock: Attach with acked > offset calls markDirty
// (d.mu) from a defer that runs while the file's mu is still held, and
// openLocked takes d.mu under the file's mu; a concurrent Attach of a new
// stream holds d.mu and takes the file's mu. Lock order inversion.
func TestAttachConcurrentDeadlock(t *testing.T) {
	// Not mustOpen: after a deadlock Close would hang too.
	d, err := target.Open(target.Config{Dir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = d.Commit()
			}
		})
		var attachers sync.WaitGroup
		for g := range 8 {
			attachers.Go(func() {
				o := &owner{fmt.Sprint(g)}
				for i := range 2000 {
					if _, _, _, err := attachAt(d, key(fmt.Sprint("c", g), i), mustName(t, "x.log"), uint64(i+1), o); err != nil {
						t.Errorf("Attach = %v", err)
						return
					}
				}
			})
		}
		attachers.Wait()
		close(stop)
		wg.Wait()
	}()
	select {
	case <-done:
		mustClose(t, d)
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock: Attach/Commit did not finish in 20s")
	}
}
