// Package tail reads complete lines from a growing file.
//
// Invariant: Read never returns a partial line. A line without its newline
// is held back until the newline arrives, unless the caller flushes it (the
// file will not grow again) or it exceeds the maximum line length; both cases
// get a newline added, so the payload always ends with one.
package tail

import (
	"bytes"
	"errors"
	"io"
	"os"
)

// Result says what Read found.
type Result int

// Read results.
const (
	// Nothing: no complete line is available at the offset yet.
	Nothing Result = iota
	// Lines: the payload holds complete lines exactly as in the file.
	Lines
	// Split: a line longer than the maximum; the payload is its first
	// maxLine bytes plus a newline. The rest follows as further lines.
	Split
	// Flushed: the file's unterminated last line plus an added newline.
	Flushed
)

// Read reads at most len(buf)-1 bytes of f at off and returns the complete
// lines among them as a prefix of buf, and the offset after them. buf needs
// one spare byte for the newline Read may add: len(buf) must be > maxLine.
// more reports that the read filled the buffer, so more data may follow.
func Read(f *os.File, off int64, buf []byte, maxLine int, flush bool) (payload []byte, next int64, res Result, more bool, err error) {
	room := len(buf) - 1
	n, err := f.ReadAt(buf[:room], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, off, Nothing, false, err
	}
	more = n == room
	if n == 0 {
		return nil, off, Nothing, false, nil
	}
	if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
		return buf[:i+1], off + int64(i+1), Lines, more, nil
	}
	switch {
	case n >= maxLine:
		buf[maxLine] = '\n'
		return buf[:maxLine+1], off + int64(maxLine), Split, true, nil
	case flush && !more:
		buf[n] = '\n'
		return buf[:n+1], off + int64(n), Flushed, false, nil
	}
	return nil, off, Nothing, false, nil
}
