package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"thunder/internal/digest"
)

// Verdict is what Verify found of one target file.
type Verdict string

// Verdicts of Verify.
const (
	// VerdictOK: the file at the name is the one written, and its bytes
	// [base, size) have the committed digest.
	VerdictOK Verdict = "ok"
	// VerdictModified: some committed byte differs, in [Offset, End).
	VerdictModified Verdict = "modified"
	// VerdictTruncated: the file is shorter (Found) than committed (Size).
	VerdictTruncated Verdict = "truncated"
	// VerdictReplaced: another file (or a link, a directory) is at the name.
	VerdictReplaced Verdict = "replaced"
	// VerdictMissing: nothing is at the name.
	VerdictMissing Verdict = "missing"
	// VerdictError: the file could not be read (Reason).
	VerdictError Verdict = "error"
)

// Verdicts lists every verdict, ok first.
var Verdicts = []Verdict{VerdictOK, VerdictModified, VerdictTruncated, VerdictReplaced, VerdictMissing, VerdictError}

// FileResult is Verify's finding for one ledger entry.
type FileResult struct {
	Name    string  `json:"name"`
	Verdict Verdict `json:"verdict"`
	Base    int64   `json:"base"`   // bytes before it are not the processor's
	Size    int64   `json:"size"`   // committed length
	Lines   uint64  `json:"lines"`  // committed lines the processor wrote
	Digest  uint32  `json:"digest"` // committed digest of [Base, Size)
	// Modified: the first range that differs, from the last checkpoint
	// that matched (or Base) to the first that did not (or Size).
	Offset int64 `json:"offset,omitempty"`
	End    int64 `json:"end,omitempty"`
	// Truncated: the file's length now.
	Found  int64  `json:"found,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Summary counts what Verify found.
type Summary struct {
	Files  int             `json:"files"`
	Bytes  int64           `json:"bytes"` // read and checked
	Counts map[Verdict]int `json:"counts"`
}

// OK reports whether every file checked was ok.
func (s Summary) OK() bool { return s.Counts[VerdictOK] == s.Files }

// Limiter bounds the rate at which Verify reads, in bytes (a
// *rate.Limiter). WaitN is asked for at most VerifyChunkBytes at once.
type Limiter interface {
	WaitN(ctx context.Context, n int) error
}

// VerifyChunkBytes is how much Verify reads at once: its memory, and the
// burst of its Limiter.
const VerifyChunkBytes = 1 << 20

// NewRate returns a Limiter of bytesPerSecond, nil (no limit) for 0.
func NewRate(bytesPerSecond int64) Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), VerifyChunkBytes)
}

// Verify checks every file in the ledger against what was committed to it
// and calls report for each, in name order: is the file at its name the
// one written (identity, without following links), not shorter, and do
// its bytes [base, size) have the committed digest, at each checkpoint and
// at the end. It reads the ledger in one transaction (a consistent
// snapshot; the files only grow past it while the processor runs, so what
// it reads of them is stable), then reads the files with no lock held, at
// most lim's rate (nil: unbounded), VerifyChunkBytes at a time. It is safe
// to run beside appends, commits and Reopen, never after Close. It returns
// early with ctx's error.
func (d *Dir) Verify(ctx context.Context, lim Limiter, report func(FileResult)) (Summary, error) {
	sum := Summary{Counts: make(map[Verdict]int)}
	entries, err := d.ledgerEntries()
	if err != nil {
		return sum, fmt.Errorf("%w: read ledger: %v", ErrStorage, err)
	}
	buf := make([]byte, VerifyChunkBytes)
	for _, e := range entries {
		r, n, err := d.verifyEntry(ctx, lim, e, buf)
		sum.Bytes += n
		if err != nil {
			return sum, err
		}
		if r.Verdict != VerdictOK && !d.stillInLedger(e) {
			// A Reopen dropped the entry since the snapshot (logrotate moved
			// the file and said so): not a finding.
			continue
		}
		sum.Files++
		sum.Counts[r.Verdict]++
		report(r)
	}
	return sum, nil
}

// stillInLedger reports whether e is still recorded (a read error counts
// as yes: the finding stands).
func (d *Dir) stillInLedger(e ledgerEntry) bool {
	found := true
	_ = d.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketLedger).Get(ledgerKey(e.name, e.serial)) != nil
		return nil
	})
	return found
}

// verifyEntry checks one entry and returns its result and the bytes it
// read; an error only for ctx.
func (d *Dir) verifyEntry(ctx context.Context, lim Limiter, e ledgerEntry, buf []byte) (FileResult, int64, error) {
	r := FileResult{Name: e.name, Verdict: VerdictOK, Base: e.rec.Base, Size: e.rec.Size, Lines: e.rec.Lines, Digest: e.rec.Digest}
	f, err := d.tree.openRead(e.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Verdict = VerdictMissing
		return r, 0, nil
	case errors.Is(err, ErrName):
		r.Verdict, r.Reason = VerdictReplaced, err.Error()
		return r, 0, nil
	case err != nil:
		r.Verdict, r.Reason = VerdictError, err.Error()
		return r, 0, nil
	}
	defer f.Close() // read-only
	info, err := identify(f)
	switch {
	case err != nil:
		r.Verdict, r.Reason = VerdictError, err.Error()
		return r, 0, nil
	case !info.id.sameFile(e.rec.ID):
		r.Verdict = VerdictReplaced
		return r, 0, nil
	case info.size < e.rec.Size:
		r.Verdict, r.Found = VerdictTruncated, info.size
		return r, 0, nil
	}
	cps, err := d.checkpoints(e.serial, e.rec.Size)
	if err != nil {
		r.Verdict, r.Reason = VerdictError, fmt.Sprintf("read checkpoints: %v", err)
		return r, 0, nil
	}
	cps = append(cps, checkpoint{e.rec.Size, e.rec.Digest})
	return compare(ctx, lim, f, &r, cps, buf)
}

// compare reads f from r.Base and checks its digest at each checkpoint in
// cps (the last one is the end), stopping at the first that differs.
func compare(ctx context.Context, lim Limiter, f *os.File, r *FileResult, cps []checkpoint, buf []byte) (FileResult, int64, error) {
	var sum uint32
	pos, good, read := r.Base, r.Base, int64(0)
	for _, cp := range cps {
		for pos < cp.offset {
			n := int(min(int64(len(buf)), cp.offset-pos))
			if lim != nil {
				if err := lim.WaitN(ctx, n); err != nil {
					return *r, read, err
				}
			} else if err := ctx.Err(); err != nil {
				return *r, read, err
			}
			m, err := f.ReadAt(buf[:n], pos)
			read += int64(m)
			if m < n {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF // cut short while we read
				}
				r.Verdict, r.Reason = VerdictError, fmt.Sprintf("read at %d: %v", pos+int64(m), err)
				return *r, read, nil
			}
			sum = digest.Update(sum, buf[:n])
			pos += int64(n)
		}
		if sum != cp.sum {
			r.Verdict, r.Offset, r.End = VerdictModified, good, cp.offset
			return *r, read, nil
		}
		good = cp.offset
	}
	return *r, read, nil
}

// StreamResult is what the state records of one stream: how much of it
// the processor committed.
type StreamResult struct {
	Collector string `json:"collector"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Bytes     uint64 `json:"bytes"`  // committed source offset
	Lines     uint64 `json:"lines"`  // committed lines
	Digest    uint32 `json:"digest"` // of the committed bytes (PROTOCOL §13)
	// NoDigest: the digest is unknown (a record older than digests).
	NoDigest bool `json:"no_digest,omitempty"`
}

// Streams calls fn for every stream recorded in the state, in one read
// transaction; fn must not call back into d.
func (d *Dir) Streams(fn func(StreamResult)) error {
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(k, v []byte) error {
			key, err := parseStreamKey(k)
			if err != nil {
				return err
			}
			rec, err := unmarshalStream(v)
			if err != nil {
				return err
			}
			fn(StreamResult{Collector: key.Collector, ID: key.ID.String(), Name: rec.Name, Bytes: rec.Committed, Lines: rec.Lines, Digest: rec.Digest, NoDigest: rec.NoDigest})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%w: read streams: %v", ErrStorage, err)
	}
	return nil
}
