package target

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"thunder/internal/relpath"
)

// Journal. A commit that touches many files would make each durable where
// it is: one syncfs(2) that writes back thousands of small extents, the
// cost of the commit growing with the files, not the bytes (docs/
// BENCHMARKS.md). Such a commit instead copies what each file got since its
// last commit, read back from the file, into a journal segment in
// relpath.StateDir, one sequential write and fsync, and records the state
// as usual; the target files are written back by the kernel when it
// pleases. A checkpoint, once a segment holds checkpointBytes or is
// checkpointAge old, starts the next segment and syncs the target file
// system with one syncfs in the background; then the old segments are
// deleted.
//
// The journal matters only if the machine crashed: a processor killed
// leaves every byte it wrote in the page cache. So recovery replays a
// segment only if it was written in another boot (or a checkpoint failed
// on it, or syncing the file system at start fails): each entry is written
// back at its offset into the file its identity names, if that file is
// still recorded, up to the recorded length, before files are cut back.
// A file is found as recovery finds it (findRecorded: at its name or
// beside it), so a journaled file moved to another directory before a
// crash is not written back; README says so.
//
// Each entry names the opening of its file (the record's serial) it was
// written through, and replay writes it only into a file recorded with that
// serial: a file truncated by someone (copytruncate) and written again is
// recorded afresh, and its old entries would put old bytes over newer
// acknowledged ones. An opening that records a file afresh while entries of
// it wait for a checkpoint fsyncs it first (settle), so that the old
// entries are needed no more.
//
// While a segment is not checkpointed, the records of its files must stay:
// replay finds files by them. So a record the commits would drop is held
// until a checkpoint that started after the drop succeeded (heldDrop).
//
// A checkpoint that fails marks every segment not yet checkpointed for
// replay, the one being written too (a page it wrote back may be what
// failed, and the next syncfs would not say so again), and the journal
// stops: the commits after it sync their files, and nothing is deleted
// until the next start replays it all.

// journalPrefix names the segments in relpath.StateDir: journal.<seq>.
const journalPrefix = "journal."

// errNotSegment is a journal name that is not a segment the processor can read.
var errNotSegment = errors.New("not a journal segment")

var (
	// journalMin, when positive, overrides Config.JournalMinFiles (tests).
	journalMin = 0
	// checkpointBytes and checkpointAge bound a segment: the bytes a
	// crash may make recovery write again, and the journal's disk space
	// (two segments at most: one written, one being checkpointed).
	checkpointBytes int64 = 1 << 30
	checkpointAge         = 30 * time.Second
	// bootID identifies this boot of the machine (a variable for tests
	// that play a crash of it).
	bootID = readBootID
)

// Segment layout: a header, then entries.
//
//	header: "THJ1" flags(1) boot(36) seq(8) crc32c(4) of all before it but flags
//	entry:  len(4) body(len) crc32c(4) of body
//	body:   dev(8) ino(8) btime(8) handleLen(1) handle from(8) data
//
// flags has segReplay set, after a failed checkpoint, to have recovery
// replay the segment whatever the boot. A torn or damaged entry ends the
// segment: nothing after it was acknowledged by a commit that wrote it
// (the commit syncs before it records).
const (
	segMagic      = "THJ2"
	segHeaderSize = 4 + 1 + bootIDSize + 8 + 4
	bootIDSize    = 36
	segReplay     = 1
	maxEntryData  = 1 << 20
	entryFixed    = 8 + 8 + 8 + 8 + 1 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journal is the Dir's journal; nil where commits may not use syncfs.
// Segments are written by commits only (commitMu); mu guards what the
// checkpoint goroutine shares with them.
type journal struct {
	d    *Dir
	boot string
	// sfs is the target directory opened for the checkpoints' syncfs
	// alone: a writeback error is reported once per descriptor, and the
	// commits' syncfs must not take it from the checkpoints, nor they
	// from the commits.
	sfs *os.File

	seg      *os.File // nil: the next commit starts a segment
	w        *bufio.Writer
	seq      uint64 // of seg; the next is seq+1
	segBytes int64
	segStart time.Time
	buf      []byte

	mu            sync.Mutex
	live          []uint64 // segments written and not checkpointed, seg's too
	checkpointing bool
	started, done uint64 // checkpoints started, and the last one that succeeded
	failed        bool   // a checkpoint failed: the journal stopped, its segments stay until restart
	held          []heldDrop
	ids           map[[2]uint64]uint64 // dev, ino of each file journaled → started when it last was
	ckDone        sync.WaitGroup
}

// heldDrop is a record to drop once a checkpoint numbered above epoch
// succeeded.
type heldDrop struct {
	drop
	epoch uint64
}

func newJournal(d *Dir, nextSeq uint64) (*journal, error) {
	sfs, err := d.tree.reopenRoot()
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journal{d: d, boot: bootID(), sfs: sfs, seq: nextSeq - 1, ids: make(map[[2]uint64]uint64)}, nil
}

// close releases the checkpoints' descriptor, once they are done.
func (j *journal) close() error { return j.sfs.Close() }

// readBootID returns the kernel's id of this boot, "" if it has none.
func readBootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func segName(seq uint64) string {
	return path.Join(relpath.StateDir, fmt.Sprintf("%s%016x", journalPrefix, seq))
}

// segments lists the journal's segments by sequence number.
func (d *Dir) segments() ([]uint64, error) {
	names, err := d.tree.stateNames()
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, n := range names {
		if hex, ok := strings.CutPrefix(n, journalPrefix); ok {
			if seq, err := strconv.ParseUint(hex, 16, 64); err == nil && fmt.Sprintf("%016x", seq) == hex {
				seqs = append(seqs, seq)
			}
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// begin readies a segment for a commit's entries. commitMu is held.
func (j *journal) begin() error {
	if j.seg != nil {
		return nil
	}
	seq := j.seq + 1
	f, err := j.d.tree.openStateFile(segName(seq))
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	hdr := make([]byte, 0, segHeaderSize)
	hdr = append(hdr, segMagic...)
	hdr = append(hdr, 0)
	boot := make([]byte, bootIDSize)
	copy(boot, j.boot)
	hdr = append(hdr, boot...)
	hdr = binary.BigEndian.AppendUint64(hdr, seq)
	hdr = binary.BigEndian.AppendUint32(hdr, segCRC(hdr))
	// The header is written now, not buffered: a failed checkpoint sets
	// its flags in place, and a later flush must not write them over.
	// The segment's name is made durable before a commit relies on it.
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt(hdr, 0)
	}
	if err == nil {
		err = syncSegmentDir(&j.d.tree)
	}
	if err == nil {
		j.mu.Lock()
		if j.failed {
			err = errJournalStopped
		} else {
			j.live = append(j.live, seq)
		}
		j.mu.Unlock()
	}
	if err != nil {
		f.Close()
		if rerr := j.d.tree.removeStateFile(segName(seq)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			j.d.log.Warn("journal: cannot remove a segment no commit used", "segment", segName(seq), "err", rerr)
		}
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Seek(int64(len(hdr)), io.SeekStart); err != nil {
		// Not reached for a regular file; the segment is live, and
		// empty past its header.
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if j.w == nil {
		j.w = bufio.NewWriterSize(f, 1<<20)
	} else {
		j.w.Reset(f)
	}
	j.seg, j.seq, j.segBytes, j.segStart = f, seq, int64(len(hdr)), time.Now()
	return nil
}

// errJournalStopped is what begin says once a checkpoint failed.
var errJournalStopped = errors.New("stopped after a checkpoint failed; commits sync their files until the next start")

// syncSegmentDir fsyncs the state directory (a variable for tests).
var syncSegmentDir = (*tree).syncStateDir

// segCRC is the header's checksum, over all of it but the flags.
func segCRC(hdr []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[:4])
	return crc32.Update(c, castagnoli, hdr[5:segHeaderSize-4])
}

// add copies bytes [from, to) of f, read back through fd, into the
// segment, as written through the opening recorded with serial. commitMu
// and f.mu are held. On error what it added is harmless (the bytes the file
// held), and the caller syncs f instead.
func (j *journal) add(id fileID, serial uint64, fd *os.File, from, to int64) error {
	if j.buf == nil {
		j.buf = make([]byte, maxEntryData)
	}
	j.mu.Lock()
	j.ids[[2]uint64{id.Dev, id.Ino}] = j.started
	j.mu.Unlock()
	for from < to {
		n := int(min(to-from, maxEntryData))
		if _, err := fd.ReadAt(j.buf[:n], from); err != nil {
			return fmt.Errorf("journal: read back %s: %w", fd.Name(), err)
		}
		if err := j.entry(id, serial, from, j.buf[:n]); err != nil {
			j.abandon()
			return err
		}
		from += int64(n)
	}
	return nil
}

func (j *journal) entry(id fileID, serial uint64, from int64, data []byte) error {
	var hdr [4 + entryFixed + 255]byte
	b := hdr[:4]
	b = binary.BigEndian.AppendUint64(b, id.Dev)
	b = binary.BigEndian.AppendUint64(b, id.Ino)
	b = binary.BigEndian.AppendUint64(b, uint64(id.Btime))
	b = binary.BigEndian.AppendUint64(b, serial)
	h := id.Handle[:min(len(id.Handle), 255)]
	b = append(b, byte(len(h)))
	b = append(b, h...)
	b = binary.BigEndian.AppendUint64(b, uint64(from))
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4+len(data)))
	c := crc32.Update(crc32.Update(0, castagnoli, b[4:]), castagnoli, data)
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], c)
	for _, p := range [][]byte{b, data, tail[:]} {
		if _, err := j.w.Write(p); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	j.segBytes += int64(len(b) + len(data) + len(tail))
	j.d.m.journaled(len(data))
	return nil
}

// sync makes the segment durable. commitMu is held.
func (j *journal) sync() error {
	err := j.w.Flush()
	if err == nil {
		err = j.seg.Sync()
	}
	if err != nil {
		j.abandon()
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// abandon closes a segment that failed: the next commit starts another.
// It stays live, as what it holds is the files' bytes, until a checkpoint.
func (j *journal) abandon() {
	if j.seg != nil {
		_ = j.seg.Close() // failed already
		j.seg = nil
	}
}

// settle makes fd's file durable if entries of it wait for a checkpoint,
// before an opening records it afresh: replay will skip those entries
// (they name the old record's serial). f.mu is held.
func (j *journal) settle(id fileID, fd *os.File) error {
	j.mu.Lock()
	at, ok := j.ids[[2]uint64{id.Dev, id.Ino}]
	wait := ok && (j.failed || at >= j.done)
	j.mu.Unlock()
	if !wait {
		return nil
	}
	if err := settleSync(fd); err != nil {
		return fmt.Errorf("journal: sync %s before it is recorded afresh: %w", fd.Name(), err)
	}
	return nil
}

// settleSync is fsync (a variable for tests).
var settleSync = (*os.File).Sync

// stopped reports whether a checkpoint failed; then the segment being
// written is closed (it is marked for replay already). commitMu is held.
func (j *journal) stopped() bool {
	j.mu.Lock()
	failed := j.failed
	j.mu.Unlock()
	if failed && j.seg != nil {
		j.closeSegment()
	}
	return failed
}

// closeSegment closes the segment being written. commitMu is held.
func (j *journal) closeSegment() {
	if err := j.w.Flush(); err != nil {
		// Its commits synced what they acknowledged; the rest is of
		// no commit.
		j.d.log.Warn("journal segment could not be written to its end", "err", err)
	}
	_ = j.seg.Close() // synced by its commits, or of no commit
	j.seg = nil
}

// hold keeps drops until a checkpoint that starts after now succeeded and
// returns the held drops that may go now. commitMu is held.
func (j *journal) hold(drops []drop) []drop {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, dr := range drops {
		j.held = append(j.held, heldDrop{dr, j.started})
	}
	var free []drop
	if j.failed {
		return nil
	}
	// With no segment left, and none being checkpointed, everything
	// journaled is in its file.
	all := len(j.live) == 0 && !j.checkpointing
	j.held = slices.DeleteFunc(j.held, func(h heldDrop) bool {
		if all || h.epoch < j.done {
			free = append(free, h.drop)
			return true
		}
		return false
	})
	return free
}

// maybeCheckpoint starts a checkpoint if the segment is due and none runs.
// commitMu is held.
func (j *journal) maybeCheckpoint(force bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.checkpointing || j.failed || len(j.live) == 0 {
		return
	}
	if !force && j.seg != nil && j.segBytes < checkpointBytes && time.Since(j.segStart) < checkpointAge {
		return
	}
	if j.seg != nil {
		j.closeSegment()
	}
	segs := slices.Clone(j.live)
	j.checkpointing = true
	j.started++
	epoch := j.started
	j.ckDone.Add(1)
	go j.checkpoint(segs, epoch)
}

// checkpoint syncs the target file system: all the segments' bytes were
// written to their files before the segments were closed, so once it
// succeeds they are durable there and the segments may go.
func (j *journal) checkpoint(segs []uint64, epoch uint64) {
	defer j.ckDone.Done()
	start := time.Now()
	err := syncfs(int(j.sfs.Fd()))
	if err != nil {
		// The file system lost some page's writeback; which file's, and
		// whether a later syncfs would say so again, nobody can tell.
		// The segments hold the bytes: keep them all, the one being
		// written too, marked for recovery to replay whatever the boot.
		j.mu.Lock()
		j.failed = true
		marks := slices.Clone(j.live)
		j.mu.Unlock()
		j.d.log.Error("journal checkpoint: syncfs of the target file system failed; the journal stops, is kept and is replayed at the next start", "segments", len(marks), "err", err)
		for _, seq := range marks {
			if merr := j.d.markReplay(seq); merr != nil {
				j.d.log.Error("journal checkpoint: cannot mark a segment for replay", "segment", segName(seq), "err", merr)
			}
		}
	} else {
		for _, seq := range segs {
			if rerr := j.d.tree.removeStateFile(segName(seq)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				j.d.log.Warn("journal checkpoint: cannot remove a segment; it is replayed at most", "segment", segName(seq), "err", rerr)
			}
		}
	}
	j.d.m.checkpointed(time.Since(start), err)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.checkpointing = false
	if err != nil {
		return
	}
	j.live = slices.DeleteFunc(j.live, func(s uint64) bool { return slices.Contains(segs, s) })
	j.done = epoch
	// Files journaled before this checkpoint started are durable.
	maps.DeleteFunc(j.ids, func(_ [2]uint64, at uint64) bool { return at < epoch })
}

// finish checkpoints what is left at close and returns the drops that may
// go. commitMu is held.
func (j *journal) finish() []drop {
	j.ckDone.Wait()
	j.maybeCheckpoint(true)
	j.ckDone.Wait()
	return j.hold(nil)
}

// markReplay sets segReplay in segment seq's header.
func (d *Dir) markReplay(seq uint64) error {
	f, err := d.tree.openStateFile(segName(seq))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{segReplay}, 4); err != nil {
		return err
	}
	return f.Sync()
}

// segEntry is one entry of a segment.
type segEntry struct {
	id     fileID
	serial uint64
	from   int64
	data   []byte
}

// readSegment calls fn for each entry of segment seq, in order, until the
// first torn or damaged one, and reports the segment's boot and flags.
func (d *Dir) readSegment(seq uint64, header func(boot string, flags byte) bool, fn func(segEntry) error) error {
	f, err := d.tree.openStateFile(segName(seq))
	if err != nil {
		// Not a file of ours (a directory, a link, unreadable): it must
		// not keep the processor from starting; left as it is.
		d.log.Warn("journal segment cannot be opened; not replayed", "segment", segName(seq), "err", err)
		return errNotSegment
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, segHeaderSize)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr[:4]) != segMagic ||
		binary.BigEndian.Uint32(hdr[segHeaderSize-4:]) != segCRC(hdr) ||
		binary.BigEndian.Uint64(hdr[5+bootIDSize:]) != seq {
		if string(hdr[:4]) == "THJ1" {
			// The first, experimental format: its entries do not say
			// which opening of a file they were written through.
			d.log.Warn("journal segment of an older version, which replay cannot prove right; not replayed", "segment", segName(seq))
		} else {
			d.log.Warn("journal segment without a valid header; not replayed", "segment", segName(seq))
		}
		return nil
	}
	if !header(strings.TrimRight(string(hdr[5:5+bootIDSize]), "\x00"), hdr[4]) {
		return nil
	}
	body := make([]byte, 0, entryFixed+255+maxEntryData)
	for {
		var lb [4]byte
		if _, err := io.ReadFull(r, lb[:]); err != nil {
			return nil // the end, or torn
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n < entryFixed || n > entryFixed+255+maxEntryData {
			return nil // damaged
		}
		body = body[:n+4]
		if _, err := io.ReadFull(r, body); err != nil {
			return nil
		}
		if crc32.Checksum(body[:n], castagnoli) != binary.BigEndian.Uint32(body[n:]) {
			return nil
		}
		e, ok := parseEntry(body[:n])
		if !ok {
			return nil
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

func parseEntry(b []byte) (segEntry, bool) {
	var e segEntry
	e.id.Dev = binary.BigEndian.Uint64(b[0:])
	e.id.Ino = binary.BigEndian.Uint64(b[8:])
	e.id.Btime = int64(binary.BigEndian.Uint64(b[16:]))
	e.serial = binary.BigEndian.Uint64(b[24:])
	hl := int(b[32])
	if len(b) < entryFixed+hl {
		return e, false
	}
	if hl > 0 {
		e.id.Handle = b[33 : 33+hl]
	}
	e.from = int64(binary.BigEndian.Uint64(b[33+hl:]))
	e.data = b[41+hl:]
	return e, e.from >= 0
}

// replayJournal writes each segment's entries back into the recorded files
// if the segment may hold what the disk lost (see the top of this file),
// syncs what it wrote, and returns the segments, for the caller to remove
// once files are cut back, and the next sequence number.
func (d *Dir) replayJournal(entries []recordEntry) (segs []uint64, next uint64, err error) {
	segs, err = d.segments()
	if err != nil {
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	if len(segs) == 0 {
		return nil, 1, nil
	}
	next = segs[len(segs)-1] + 1
	boot := bootID()
	all := false
	if d.syncfs {
		if err := syncfs(int(d.tree.root.Fd())); err != nil {
			d.log.Warn("syncfs of the target file system failed at start; replaying the whole journal", "err", err)
			all = true
		}
	}
	r := newReplay(d, entries)
	defer r.close()
	read := segs[:0:0]
	for _, seq := range segs {
		err := d.readSegment(seq, func(b string, flags byte) bool {
			return all || b == "" || b != boot || flags&segReplay != 0
		}, r.write)
		if errors.Is(err, errNotSegment) {
			continue
		}
		read = append(read, seq)
		if err != nil {
			return nil, 0, fmt.Errorf("journal: replay %s: %w", segName(seq), err)
		}
	}
	if err := r.sync(); err != nil {
		return nil, 0, fmt.Errorf("journal: sync what was replayed: %w", err)
	}
	if r.bytes > 0 {
		d.log.Warn("journal replayed: the machine stopped before the target files were written back", "bytes", r.bytes, "files", len(r.wrote), "segments", len(segs))
	}
	return read, next, nil
}

// removeSegments deletes replayed segments.
func (d *Dir) removeSegments(segs []uint64) {
	for _, seq := range segs {
		if err := d.tree.removeStateFile(segName(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("cannot remove a journal segment", "segment", segName(seq), "err", err)
		}
	}
}

// replay writes entries into the files recorded with their identities and
// serials, each no further than that record says is committed.
type replay struct {
	d     *Dir
	byIno map[[2]uint64][]*replayFile
	open  map[*replayFile]*os.File
	wrote map[*replayFile]struct{}
	bytes int64
}

type replayFile struct {
	name    string
	id      fileID
	sizes   map[uint64]int64 // serial → the longest length recorded with it
	missing bool             // not found: nothing to write back
}

// maxReplayOpen bounds the descriptors replay keeps open.
const maxReplayOpen = 256

func newReplay(d *Dir, entries []recordEntry) *replay {
	r := &replay{d: d, byIno: make(map[[2]uint64][]*replayFile), open: make(map[*replayFile]*os.File), wrote: make(map[*replayFile]struct{})}
	for _, e := range entries {
		if e.rec.Legacy || !e.rec.ID.provable() {
			continue
		}
		if _, err := relpath.Clean(e.name); err != nil {
			continue
		}
		rf := r.find(e.rec.ID)
		if rf == nil {
			rf = &replayFile{name: e.name, id: e.rec.ID, sizes: make(map[uint64]int64)}
			k := [2]uint64{e.rec.ID.Dev, e.rec.ID.Ino}
			r.byIno[k] = append(r.byIno[k], rf)
		}
		rf.sizes[e.rec.Serial] = max(rf.sizes[e.rec.Serial], e.rec.Size)
	}
	return r
}

func (r *replay) find(id fileID) *replayFile {
	for _, rf := range r.byIno[[2]uint64{id.Dev, id.Ino}] {
		if rf.id.sameFile(id) {
			return rf
		}
	}
	return nil
}

func (r *replay) write(e segEntry) error {
	rf := r.find(r.d.currentDev(e.id))
	if rf == nil || rf.missing {
		return nil // not recorded, or gone
	}
	size, ok := rf.sizes[e.serial]
	if !ok || e.from >= size {
		return nil // of another opening, or past what was committed
	}
	data := e.data[:min(int64(len(e.data)), size-e.from)]
	f := r.open[rf]
	if f == nil {
		if len(r.open) >= maxReplayOpen {
			if err := r.syncOpen(); err != nil {
				return err
			}
		}
		var err error
		if f, err = r.d.findRecorded(rf.name, rf.id); err != nil {
			return err
		}
		if f == nil {
			rf.missing = true
			r.d.log.Warn("journal: a recorded target file is gone from its directory; what the journal holds for it is not written back", "name", rf.name)
			return nil
		}
		r.open[rf] = f
	}
	if _, err := f.WriteAt(data, e.from); err != nil {
		return fmt.Errorf("write back %s: %w", rf.name, err)
	}
	r.wrote[rf] = struct{}{}
	r.bytes += int64(len(data))
	return nil
}

// syncOpen fsyncs and closes the open files.
func (r *replay) syncOpen() error {
	var errs []error
	for rf, f := range r.open {
		if _, ok := r.wrote[rf]; ok {
			if err := f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", rf.name, err))
			}
		}
		f.Close()
		delete(r.open, rf)
	}
	return errors.Join(errs...)
}

func (r *replay) sync() error { return r.syncOpen() }

func (r *replay) close() {
	for _, f := range r.open {
		f.Close()
	}
}

// journalFor returns the journal if a commit of files dirty files is to
// use it, with a segment ready. commitMu is held.
func (d *Dir) journalFor(files int) *journal {
	if d.jnl == nil || files < d.jnlMin || d.jnl.stopped() {
		return nil
	}
	if err := d.jnl.begin(); err != nil {
		d.log.Warn("journal unavailable; this commit syncs its files", "err", err)
		return nil
	}
	return d.jnl
}

// syncJournal makes the snapshots journaled by jr durable; if it cannot,
// they are synced in their files like the others. commitMu is held.
func (d *Dir) syncJournal(jr *journal, snaps []snapshot) {
	if jr == nil || !slices.ContainsFunc(snaps, func(sn snapshot) bool { return sn.journaled }) {
		return
	}
	if err := jr.sync(); err != nil {
		d.log.Warn("journal could not be synced; this commit syncs its files", "err", err)
		for i := range snaps {
			snaps[i].journaled = false
		}
		return
	}
	d.m.journalCommit()
}
