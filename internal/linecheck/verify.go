package linecheck

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// StateDir is the top-level directory of a target directory that holds the
// processor's private state; [Verify] does not read it.
const StateDir = ".thunder"

// MaxExpectLines bounds [Expect.Lines]: the verifier keeps one bit per
// expected line.
const MaxExpectLines = 1 << 32

// maxProblems is how many examples a [Report] keeps.
const maxProblems = 20

// readBufferBytes is the verifier's read buffer; a longer line is corrupt.
const readBufferBytes = 1 << 20

// Expect describes what one writer wrote.
type Expect struct {
	Writer string // writer id
	Name   string // slash-separated path, relative to the verified dir, where its lines must be
	Lines  uint64 // number of lines written: seqs 0 to Lines-1
}

// Options adjusts [Verify].
type Options struct {
	// Alias maps the slash-separated path of a file relative to the verified
	// dir to the name its lines count for, e.g. "a.log.1" to "a.log" after
	// a logrotate. Nil means every file counts for its own path.
	Alias func(rel string) string
}

// Report is the result of [Verify]. Each counter counts lines, except
// Files, Partial (files) and Lost (missing seqs).
type Report struct {
	Files int // regular files read
	Lines int // complete lines read, good or bad

	Lost       int // expected lines found nowhere
	Dup        int // extra copies of lines found more than once
	Reordered  int // lines whose seq is not greater than the previous seq of their writer in the same file
	Partial    int // files whose last byte is not '\n'
	Corrupt    int // lines that do not parse or whose payload is wrong (altered, truncated, interleaved)
	Misplaced  int // lines in a file whose (aliased) name is not their writer's Expect.Name
	Unexpected int // lines of a writer not expected, or with seq >= its Expect.Lines

	Problems []string // the first few problems, human-readable
}

// Complete reports whether every expected line was found (Lost == 0).
func (r Report) Complete() bool { return r.Lost == 0 }

// Failed reports whether a problem that waiting cannot repair was found:
// a duplicated, reordered, corrupt, misplaced or unexpected line. Lost
// lines may still arrive, and a partial last line may still be completed,
// so neither counts here; poll [Verify] until Complete, failing early if
// Failed.
func (r Report) Failed() bool {
	return r.Dup != 0 || r.Reordered != 0 || r.Corrupt != 0 || r.Misplaced != 0 || r.Unexpected != 0
}

// OK reports whether every expected line was found exactly once, whole, in
// order and under its name, and nothing else was found: every problem
// counter, Lost and Partial included, is zero.
func (r Report) OK() bool {
	return r.Complete() && !r.Failed() && r.Partial == 0
}

// String returns a one-line summary of r's counters.
func (r Report) String() string {
	return fmt.Sprintf("files=%d lines=%d lost=%d dup=%d reordered=%d partial=%d corrupt=%d misplaced=%d unexpected=%d",
		r.Files, r.Lines, r.Lost, r.Dup, r.Reordered, r.Partial, r.Corrupt, r.Misplaced, r.Unexpected)
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// writerState is what the verifier knows of one expected writer.
type writerState struct {
	Expect
	hash  uint64
	seen  []uint64 // bit seq set when seq was found
	file  int      // number of the file where last was found
	last  uint64   // seq of this writer's previous line in file
	found uint64
}

type verifier struct {
	writers map[string]*writerState
	alias   func(string) string
	r       Report
	fileNo  int
}

// Verify reads every regular file under dir, recursively, except the
// processor's state directory [StateDir] at the top, and checks that the
// lines of the writers in expect were each found exactly once, whole, in
// order and in the file named for their writer, as [Report] describes. A
// file that vanishes while Verify runs is skipped. Verify returns an error
// only if expect is invalid or dir cannot be read; problems with the lines
// are counted in the Report.
func Verify(dir string, expect []Expect, opt Options) (Report, error) {
	return VerifyAll([]string{dir}, expect, opt)
}

// VerifyAll is [Verify] over the union of several directories, e.g. the
// target directories of processors sharing the streams: a line counts as
// found wherever it is, a copy in a second directory is a duplicate, and
// order is checked within each file.
func VerifyAll(dirs []string, expect []Expect, opt Options) (Report, error) {
	v := &verifier{writers: make(map[string]*writerState, len(expect)), alias: opt.Alias}
	for _, e := range expect {
		switch {
		case !ValidID(e.Writer):
			return Report{}, fmt.Errorf("linecheck: invalid writer id %q", e.Writer)
		case v.writers[e.Writer] != nil:
			return Report{}, fmt.Errorf("linecheck: writer %s expected twice", e.Writer)
		case e.Lines > MaxExpectLines:
			return Report{}, fmt.Errorf("linecheck: writer %s: %d lines exceed %d", e.Writer, e.Lines, MaxExpectLines)
		}
		v.writers[e.Writer] = &writerState{
			Expect: e,
			hash:   idHash(e.Writer),
			seen:   make([]uint64, (e.Lines+63)/64),
			file:   -1,
		}
	}
	buf := bufio.NewReaderSize(nil, readBufferBytes)
	for _, dir := range dirs {
		if err := v.walk(dir, buf); err != nil {
			return v.r, fmt.Errorf("linecheck: %w", err)
		}
	}
	v.lost()
	return v.r, nil
}

func (v *verifier) walk(dir string, buf *bufio.Reader) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == StateDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return v.readFile(path, rel, buf)
	})
}

func (v *verifier) readFile(path, rel string, br *bufio.Reader) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close() // read-only: no error worth reporting
	name := rel
	if v.alias != nil {
		name = v.alias(rel)
	}
	v.r.Files++
	v.fileNo++
	br.Reset(f)
	lineNo := 0
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			lineNo++
			v.line(line[:len(line)-1], rel, name, lineNo)
			continue
		case errors.Is(err, bufio.ErrBufferFull):
			lineNo++
			v.r.Lines++
			v.r.Corrupt++
			v.r.problem("corrupt: %s:%d: line longer than %d bytes", rel, lineNo, readBufferBytes)
			if err := skipLine(br); err == nil {
				continue
			} else if err != io.EOF {
				return err
			}
			line = nil // the partial end of an overlong line is counted above
		case err == io.EOF:
		default:
			return err
		}
		if len(line) > 0 {
			v.r.Partial++
			v.r.problem("partial: %s: last line %q has no newline", rel, abbrev(line))
		}
		return nil
	}
}

// skipLine reads past the next newline.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func (v *verifier) line(line []byte, rel, name string, lineNo int) {
	v.r.Lines++
	id, seq, payload, ok := parseLine(line)
	if !ok {
		v.r.Corrupt++
		v.r.problem("corrupt: %s:%d: cannot parse %q", rel, lineNo, abbrev(line))
		return
	}
	w := v.writers[string(id)]
	h := idHash(id)
	if w != nil {
		h = w.hash
	}
	if !payloadOK(payload, h, seq) {
		v.r.Corrupt++
		v.r.problem("corrupt: %s:%d: wrong payload in %q", rel, lineNo, abbrev(line))
		return
	}
	if w == nil || seq >= w.Lines {
		v.r.Unexpected++
		v.r.problem("unexpected: %s:%d: writer %s seq %d", rel, lineNo, id, seq)
		return
	}
	if name != w.Name {
		v.r.Misplaced++
		v.r.problem("misplaced: %s:%d: writer %s seq %d belongs in %s", rel, lineNo, id, seq, w.Name)
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	if w.seen[word]&bit != 0 {
		v.r.Dup++
		v.r.problem("dup: %s:%d: writer %s seq %d seen before", rel, lineNo, id, seq)
		return
	}
	w.seen[word] |= bit
	w.found++
	if w.file == v.fileNo && seq <= w.last {
		v.r.Reordered++
		v.r.problem("reordered: %s:%d: writer %s seq %d after seq %d", rel, lineNo, id, seq, w.last)
	}
	w.file, w.last = v.fileNo, seq
}

// lost counts the expected lines not found and describes the first gaps.
func (v *verifier) lost() {
	ids := make([]string, 0, len(v.writers))
	for id := range v.writers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		w := v.writers[id]
		if w.found == w.Lines {
			continue
		}
		v.r.Lost += int(w.Lines - w.found)
		var gaps []string
		for seq := uint64(0); seq < w.Lines && len(gaps) < 3; {
			from, ok := nextMissing(w.seen, seq, w.Lines)
			if !ok {
				break
			}
			to := nextSeen(w.seen, from, w.Lines)
			gaps = append(gaps, fmt.Sprintf("%d-%d", from, to-1))
			seq = to
		}
		v.r.problem("lost: writer %s: %d of %d lines, seqs %s", id, w.Lines-w.found, w.Lines, strings.Join(gaps, ","))
	}
}

// nextMissing returns the first seq >= from, < n, whose bit is clear.
func nextMissing(seen []uint64, from, n uint64) (uint64, bool) {
	for seq := from; seq < n; {
		word := seen[seq/64] >> (seq % 64)
		if word == ^uint64(0)>>(seq%64) {
			seq = (seq/64 + 1) * 64
			continue
		}
		seq += uint64(bits.TrailingZeros64(^word))
		return seq, seq < n
	}
	return 0, false
}

// nextSeen returns the first seq >= from whose bit is set, or n.
func nextSeen(seen []uint64, from, n uint64) uint64 {
	for seq := from; seq < n; {
		word := seen[seq/64] >> (seq % 64)
		if word == 0 {
			seq = (seq/64 + 1) * 64
			continue
		}
		return min(seq+uint64(bits.TrailingZeros64(word)), n)
	}
	return n
}

// abbrev shortens a line for a problem message.
func abbrev(b []byte) string {
	const max = 60
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
