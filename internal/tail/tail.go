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
// lines among them as a prefix of buf, and the offset after them. A line
// whose content (without its newline) is longer than maxLine is cut: the
// payload is its first maxLine bytes plus a newline, and the rest follows as
// the next read. buf needs room for one line of maxLine bytes, its newline
// and the newline Read may add: len(buf) >= maxLine+2. more reports that
// more data may follow at once.
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
		if i < maxLine {
			return buf[:i+1], off + int64(i+1), Lines, more, nil // no line can be too long
		}
		// Find the first line longer than maxLine, if any.
		for start := 0; start <= i; {
			j := bytes.IndexByte(buf[start:i+1], '\n')
			if j > maxLine {
				if start == 0 {
					return split(buf, off, maxLine)
				}
				return buf[:start], off + int64(start), Lines, true, nil
			}
			start += j + 1
		}
		return buf[:i+1], off + int64(i+1), Lines, more, nil
	}
	switch {
	case n > maxLine:
		return split(buf, off, maxLine)
	case flush && !more:
		buf[n] = '\n'
		return buf[:n+1], off + int64(n), Flushed, false, nil
	}
	return nil, off, Nothing, false, nil
}

func split(buf []byte, off int64, maxLine int) ([]byte, int64, Result, bool, error) {
	buf[maxLine] = '\n'
	return buf[:maxLine+1], off + int64(maxLine), Split, true, nil
}
