//go:build linux

package target_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// modelLine is line n of stream i: fixed length, so any offset a resend
// starts at is a line boundary, and unique, so a duplicate shows.
func modelLine(i, n int) string { return fmt.Sprintf("s%02d %014d\n", i, n) }

const modelLineLen = 19

// model drives a Dir as collectors and an operator would, one step at a
// time, and checks after each commit what the target promises: the files
// of each name (rotated ones in rotation order, then the one at the name)
// hold a prefix of the stream, no line twice, and at least all that was
// acknowledged; after a crash, exactly that.
type model struct {
	t       *testing.T
	dir     string
	budget  int
	d       *target.Dir
	owners  []*owner
	streams []*target.Stream
	sent    []uint64 // next offset each collector sends
	acked   []uint64
	rotated []int // rotations of each name so far
	stop    func()
	mu      sync.Mutex // acked: acks come from the committer too
}

const modelFiles = 10

// modelSeeds is how many random runs TestAttack2Model makes
// (ATTACK2_SEEDS=n for more).
func modelSeeds() int {
	if n, err := strconv.Atoi(os.Getenv("ATTACK2_SEEDS")); err == nil {
		return n
	}
	return 16
}

func modelName(i int) string { return fmt.Sprintf("m%d/f%02d.log", i%2, i) }

func newModel(t *testing.T, budget int) *model {
	m := &model{t: t, dir: t.TempDir(), budget: budget, sent: make([]uint64, modelFiles), acked: make([]uint64, modelFiles), rotated: make([]int, modelFiles)}
	// Also without write-behind: the same promises hold. The cleanup is
	// for the last open; a second Close is harmless.
	m.open()
	t.Cleanup(func() { m.stop(); _ = m.d.Close() })
	return m
}

func (m *model) open() {
	d, err := target.Open(target.Config{Dir: m.dir, Logger: quietLogger(), MaxOpenFiles: m.budget})
	if err != nil {
		m.t.Fatal(err)
	}
	m.d = d
	// Appends that wait for room ask for a commit, as they ask Run.
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-target.CommitWanted(d):
				acks, _ := d.Commit()
				m.record(acks)
			}
		}
	}()
	m.stop = sync.OnceFunc(func() { close(done); <-stopped })
	m.owners = make([]*owner, modelFiles)
	m.streams = make([]*target.Stream, modelFiles)
	for i := range modelFiles {
		m.attach(i)
	}
}

// attach (re)attaches stream i under a new owner; the collector resends
// from where the processor says.
func (m *model) attach(i int) {
	o := &owner{fmt.Sprint(i)}
	s, at, _, err := attachAt(m.d, key("m", i), mustName(m.t, modelName(i)), 0, o)
	if err != nil {
		m.t.Fatalf("attach %d: %v", i, err)
	}
	m.mu.Lock()
	acked := m.acked[i]
	m.mu.Unlock()
	if at < acked || at%modelLineLen != 0 {
		m.t.Fatalf("%s resumes at %d, acked %d", modelName(i), at, acked)
	}
	m.owners[i], m.streams[i], m.sent[i] = o, s, at
}

func (m *model) append(i, n int) {
	var b strings.Builder
	first := int(m.sent[i] / modelLineLen)
	for k := range n {
		b.WriteString(modelLine(i, first+k))
	}
	end := m.sent[i] + uint64(b.Len())
	err := m.streams[i].Append(m.owners[i], chunk(m.sent[i], end, []byte(b.String())))
	switch {
	case err == nil:
		m.sent[i] = end
	case errors.Is(err, target.ErrNotOwner), errors.Is(err, target.ErrStorage):
		m.t.Logf("append %s: %v: re-attach", modelName(i), err)
		m.attach(i)
	default:
		m.t.Fatalf("append %s: %v", modelName(i), err)
	}
}

func (m *model) commit(reopen bool) {
	var acks []target.Ack
	var err error
	if reopen {
		acks, err = target.ReopenAcks(m.d)
	} else {
		acks, err = m.d.Commit()
	}
	if err != nil {
		m.t.Logf("commit (reopen %v): %v", reopen, err)
	}
	m.record(acks)
	release := target.HoldCommits(m.d)
	m.check(false)
	if n, open := target.OpenFDs(m.d), fdsUnder(m.dir); n != int64(open) {
		m.t.Errorf("%d target descriptors counted, %d open", n, open)
	}
	release()
}

// record takes acks as the collectors do: an ack of a stream's key is
// its collector's, whichever connection it came on.
func (m *model) record(acks []target.Ack) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range acks {
		var i int
		if _, err := fmt.Sscanf(a.Stream.Name, "m%d/f%02d.log", new(int), &i); err != nil {
			m.t.Errorf("ack for %s", a.Stream.Name)
			continue
		}
		m.acked[i] = max(m.acked[i], a.At.Offset)
	}
}

// rotate renames name i away as logrotate does, and with create puts an
// empty file at the name.
func (m *model) rotate(i int, create bool) {
	m.rotated[i]++
	p := filepath.Join(m.dir, modelName(i))
	if err := os.Rename(p, fmt.Sprintf("%s.%03d", p, m.rotated[i])); err != nil && !os.IsNotExist(err) {
		m.t.Fatal(err)
	}
	if create {
		if err := os.WriteFile(p, nil, 0o644); err != nil && !os.IsNotExist(err) {
			m.t.Fatal(err)
		}
	}
}

func (m *model) crash() {
	m.stop()
	crash(m.t, m.d, m.dir)
	m.open()
	m.check(true)
}

// content is what the files of name i hold, oldest first.
func (m *model) content(i int) string {
	p := filepath.Join(m.dir, modelName(i))
	names, _ := filepath.Glob(p + ".*")
	sort.Strings(names)
	names = append(names, p)
	var all strings.Builder
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil && !os.IsNotExist(err) {
			m.t.Fatal(err)
		}
		all.Write(b)
	}
	return all.String()
}

func (m *model) check(exact bool) {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range modelFiles {
		got := m.content(i)
		n := len(got) / modelLineLen
		var want strings.Builder
		for k := range n {
			want.WriteString(modelLine(i, k))
		}
		switch {
		case got != want.String():
			m.t.Fatalf("%s: files hold %q, not a prefix of the stream (a line lost or twice)", modelName(i), got)
		case uint64(len(got)) < m.acked[i]:
			m.t.Fatalf("%s: files hold %d bytes, %d acknowledged", modelName(i), len(got), m.acked[i])
		case exact && uint64(len(got)) != m.acked[i]:
			m.t.Fatalf("%s: after a crash files hold %d bytes, %d acknowledged", modelName(i), len(got), m.acked[i])
		}
	}
}

// TestAttack2Model: random steps of appends (most files without a
// descriptor: write-behind), idle and dirty closes, commits, Reopens,
// renames by logrotate (with and without create) and crashes.
func TestAttack2Model(t *testing.T) {
	for seed := range modelSeeds() {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			m := newModel(t, 4)
			rng := rand.New(rand.NewPCG(uint64(seed), 2))
			failSyncfs := false
			target.SetSyncfs(t, func(fd int) error {
				if failSyncfs {
					return unix.EIO
				}
				return unix.Syncfs(fd)
			})
			for step := range 300 {
				_ = step
				failSyncfs = seed%2 == 1 && rng.IntN(4) == 0
				switch r := rng.IntN(100); {
				case r < 3:
					i := rng.IntN(modelFiles)
					m.streams[i].Detach(m.owners[i])
					m.attach(i)
				case r < 55:
					m.append(rng.IntN(modelFiles), 1+rng.IntN(3))
				case r < 70:
					m.d.CloseIdle(rng.IntN(m.budget))
				case r < 85:
					m.commit(false)
				case r < 90:
					m.commit(true)
				case r < 97:
					m.rotate(rng.IntN(modelFiles), rng.IntN(2) == 0)
				default:
					m.crash()
				}
			}
			m.commit(false)
			m.stop()
			mustClose(t, m.d)
		})
	}
}

// TestAttack2ModelMidCommit is TestAttack2Model with the collectors and
// the operator acting in the middle of commits too: between a commit's
// snapshot (and its writes of what was buffered) and its record, inside
// its syncfs.
func TestAttack2ModelMidCommit(t *testing.T) {
	defer target.SetSyncfsMin(target.SetSyncfsMin(1))
	for seed := range modelSeeds() {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			m := newModel(t, 4)
			if !target.WritesBehind(m.d) {
				t.Skip("no write-behind: commits use no syncfs")
			}
			rng := rand.New(rand.NewPCG(uint64(seed), 3))
			var driving atomic.Bool // the driver waits in a commit: the hook may act
			target.SetSyncfs(t, func(fd int) error {
				if driving.Load() {
					for range rng.IntN(3) {
						switch r := rng.IntN(10); {
						case r < 5:
							// Not one that waits for a descriptor: none is
							// freed before this commit ends.
							if i := rng.IntN(modelFiles); target.AppendsAtOnce(m.streams[i]) {
								m.append(i, 1)
							}
						case r < 7:
							m.d.CloseIdle(rng.IntN(m.budget))
						case r < 9:
							m.rotate(rng.IntN(modelFiles), rng.IntN(2) == 0)
						default:
							i := rng.IntN(modelFiles)
							m.streams[i].Detach(m.owners[i])
							m.attach(i)
						}
					}
				}
				return unix.Syncfs(fd)
			})
			for range 200 {
				switch r := rng.IntN(100); {
				case r < 55:
					m.append(rng.IntN(modelFiles), 1+rng.IntN(3))
				case r < 65:
					m.d.CloseIdle(rng.IntN(m.budget))
				case r < 85:
					driving.Store(true)
					m.commit(false)
					driving.Store(false)
				case r < 90:
					driving.Store(true)
					m.commit(true)
					driving.Store(false)
				case r < 97:
					m.rotate(rng.IntN(modelFiles), rng.IntN(2) == 0)
				default:
					m.crash()
				}
			}
			m.commit(false)
			m.stop()
			mustClose(t, m.d)
		})
	}
}
