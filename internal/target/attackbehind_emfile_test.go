//go:build linux

package target_test

import (
	"context"
	"os"
	"testing"
	"time"

	"thunder/internal/stream"
	"thunder/internal/target"
)

// ackOwner is an owner that hands its acknowledgements to a test.
type ackOwner struct{ acks chan stream.Mark }

func (o *ackOwner) Committed(m stream.Mark) {
	select {
	case o.acks <- m:
	default:
	}
}

// waitAck waits up to limit for an ack of o at offset end.
func waitAck(t *testing.T, o *ackOwner, end uint64, limit time.Duration) bool {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case m := <-o.acks:
			if m.Offset == end {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// TestAttackBehindOutOfDescriptorsRetried: a commit that cannot open a
// file to write what was buffered for it (the process out of descriptors)
// leaves it for the next commit, but asked for none and reported
// success: with nothing else appended, Run never committed again, and the
// stream, its collector waiting for the ack, stayed unacknowledged for
// ever after descriptors were free again.
func TestAttackBehindOutOfDescriptorsRetried(t *testing.T) {
	dir := t.TempDir()
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger(), MaxOpenFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !target.WritesBehind(d) {
		t.Skip("no write-behind on this kernel")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		mustClose(t, d)
	}()
	oa, ob := &ackOwner{make(chan stream.Mark, 16)}, &ackOwner{make(chan stream.Mark, 16)}
	sa, _, _ := mustAttach(t, d, key("a", 1), "a.log", 0, oa)
	sb, _, _ := mustAttach(t, d, key("b", 1), "b.log", 0, ob)
	endA := mustAppend(t, d, sa, oa, 0, "a 0\n")
	if !waitAck(t, oa, endA, 10*time.Second) {
		t.Fatal("a not acknowledged")
	}
	endB := mustAppend(t, d, sb, ob, 0, "b 0\n") // closes a, idle, for b
	if !waitAck(t, ob, endB, 10*time.Second) {
		t.Fatal("b not acknowledged")
	}
	if openByUs(dir + "/a.log") {
		t.Fatal("a is still open: nothing to buffer")
	}

	restore := lowerNofile(t, 64)
	target.SpendReserve(d)
	var hogs []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		hogs = append(hogs, f)
	}
	before, _ := d.Health()
	endA = mustAppend(t, d, sa, oa, endA, "a 1\n") // buffered: no descriptor needed
	// Run's commit of it, out of descriptors.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if last, _ := d.Health(); last.After(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no commit ran")
		}
		time.Sleep(time.Millisecond)
	}
	for _, f := range hogs {
		f.Close()
	}
	restore()
	if !waitAck(t, oa, endA, 10*time.Second) {
		t.Fatalf("a's buffered line not acknowledged 10 s after descriptors were free again (buffered: %d bytes)", target.BehindBytes(d))
	}
}
