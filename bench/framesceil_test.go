//go:build unix

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"thunder/internal/linecheck"
)

// TestFramesCeilingCopies: the frames ceiling's copier writes each frame
// whole to the file its header names, and every byte the generator counts
// as sent, up to each file's bound; a header naming a file the hello did
// not open ends the connection with an error instead of writing.
func TestFramesCeilingCopies(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { errs <- copyConn(c, dir, &total) })
		}
	})
	defer wg.Wait()
	defer ln.Close()
	const conns, files = 4, 3
	const streamMax = 7 * fakeFrameLines * lineBytes
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "c%05d %d\n", i, files)
		ok := []byte{0}
		if _, err := io.ReadFull(c, ok); err != nil || ok[0] != 'k' {
			t.Fatalf("connection %d: %q, %v", i, ok, err)
		}
		cs[i] = c
	}
	sent := sendFrames(cs, files, streamMax, time.Minute)
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if want := int64(conns * files * streamMax); sent != want || total.Load() != want {
		t.Fatalf("sent %d, written %d, want %d", sent, total.Load(), want)
	}
	var frame []byte
	for i := range uint64(fakeFrameLines) {
		frame, _ = linecheck.AppendLine(frame, "ceiling", i, lineBytes)
	}
	for i := range conns {
		for f := range files {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("c%05d", i), fmt.Sprintf("f%d.log", f)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, bytes.Repeat(frame, streamMax/len(frame))) {
				t.Fatalf("c%05d/f%d.log: %d bytes, not %d whole frames", i, f, len(b), streamMax/len(frame))
			}
		}
	}

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "bad %d\n", 1)
	ok := []byte{0}
	if _, err := io.ReadFull(c, ok); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{1, 0, 0, 0, 4, 0, 0, 0, 'x', 'y', 'z', '\n'}) // file 1 of 1
	if err := <-errs; err == nil {
		t.Fatal("a frame for a file not opened was taken")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bad", "f0.log")); len(b) != 0 {
		t.Fatalf("bad/f0.log got %q", b)
	}
}
