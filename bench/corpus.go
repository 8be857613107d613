//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"thunder/internal/linecheck"
)

// lineBytes is the length of every benchmark line, newline included.
const lineBytes = 100

// corpus returns a file of size bytes (rounded down to whole lines) of
// 100-byte linecheck lines of writer "bulk", creating it under dir if a
// file of that size is not there yet, and reading it once so it is in the
// page cache.
func corpus(dir string, size int64) (string, int64, error) {
	size = size / lineBytes * lineBytes
	path := filepath.Join(dir, fmt.Sprintf("thunder-lines-%d.log", size))
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		if err := writeCorpus(path, size); err != nil {
			return "", 0, err
		}
	}
	if _, err := readAll(path, 1<<20); err != nil {
		return "", 0, err
	}
	return path, size, nil
}

func writeCorpus(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<20)
	for seq, n := uint64(0), int64(0); n < size; seq++ {
		if buf, err = linecheck.AppendLine(buf, "bulk", seq, lineBytes); err != nil {
			f.Close()
			return err
		}
		n += lineBytes
		if len(buf) > cap(buf)-lineBytes || n >= size {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
			buf = buf[:0]
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readAll reads path with a buffer of bufBytes and returns how many bytes it read.
func readAll(path string, bufBytes int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close() // read-only
	buf := make([]byte, bufBytes)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// sameContent reports whether files a and b hold the same bytes.
func sameContent(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close() // read-only
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close() // read-only
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s and %s differ near offset %d", a, b, off)
		}
		off += int64(na)
		aEnd := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bEnd := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		switch {
		case aEnd && bEnd:
			return nil
		case ea != nil && !aEnd:
			return ea
		case eb != nil && !bEnd:
			return eb
		case aEnd != bEnd:
			return fmt.Errorf("%s and %s differ in length", a, b)
		}
	}
}

// fileSize returns the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
