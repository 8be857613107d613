package target_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/digest"
	"thunder/internal/stream"
	"thunder/internal/target"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o1, o2 := &owner{"conn1"}, &owner{"conn2"}
	k1, k2 := key("alpha", 1), key("beta", 2)

	s1, off, committed := mustAttach(t, d, k1, "a/b/c.log", 0, o1)
	if off != 0 || committed != 0 {
		t.Fatalf("Attach(new) = offset %d, committed %d, want 0, 0", off, committed)
	}
	s2, off, _ := mustAttach(t, d, k2, "top.log", 0, o2)
	if off != 0 {
		t.Fatalf("Attach(new) = offset %d, want 0", off)
	}
	if s1.Key != k1 || s1.Name != "a/b/c.log" {
		t.Errorf("stream = %s %q, want %s %q", s1.Key, s1.Name, k1, "a/b/c.log")
	}

	p1 := lines("one", 0, 3)
	end1 := mustAppend(t, d, s1, o1, 0, p1)
	p2 := lines("two", 0, 5)
	end2 := mustAppend(t, d, s2, o2, 0, p2)

	acks := mustCommit(t, d)
	if len(acks) != 2 {
		t.Fatalf("Commit() = %d acks, want 2: %v", len(acks), acks)
	}
	// Each ack carries the stream's digest: the CRC-32C of what it holds.
	for _, want := range []target.Ack{
		{s1, o1, stream.Mark{Offset: end1, Digest: digest.Checksum([]byte(p1))}},
		{s2, o2, stream.Mark{Offset: end2, Digest: digest.Checksum([]byte(p2))}},
	} {
		got, ok := ackFor(t, acks, want.Stream)
		if !ok || got != want {
			t.Errorf("ack for %s = %+v (found %v), want %+v", want.Stream.Key, got, ok, want)
		}
	}
	if acks := mustCommit(t, d); len(acks) != 0 {
		t.Errorf("Commit() with nothing new = %v, want no acks", acks)
	}

	// A second batch acks the new end only.
	p1b := lines("one", 3, 2)
	end1b := mustAppend(t, d, s1, o1, end1, p1b)
	acks = mustCommit(t, d)
	if got, ok := ackFor(t, acks, s1); !ok || got.At != (stream.Mark{Offset: end1b, Digest: digest.Checksum([]byte(p1 + p1b))}) || len(acks) != 1 {
		t.Errorf("Commit() = %v, want one ack for %s at %d", acks, k1, end1b)
	}

	if got := readFile(t, filepath.Join(dir, "a", "b", "c.log")); got != p1+p1b {
		t.Errorf("a/b/c.log = %q, want %q", got, p1+p1b)
	}
	if got := readFile(t, filepath.Join(dir, "top.log")); got != p2 {
		t.Errorf("top.log = %q, want %q", got, p2)
	}
	if st, err := os.Stat(filepath.Join(dir, "a", "b", "c.log")); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("a/b/c.log mode = %v, %v; want 0644", st.Mode(), err)
	}
	mustClose(t, d)

	// Committed offsets survive a restart.
	d = mustOpen(t, dir)
	for _, c := range []struct {
		s    *target.Stream
		name string
		want uint64
	}{
		{s1, "a/b/c.log", end1b},
		{s2, "top.log", end2},
	} {
		_, off, committed := mustAttach(t, d, c.s.Key, c.name, 0, o1)
		if off != c.want || committed != c.want {
			t.Errorf("Attach(%s) after reopen = offset %d, committed %d, want %d", c.s.Key, off, committed, c.want)
		}
	}
	// Appending continues the file.
	s1, _, _ = mustAttach(t, d, k1, "a/b/c.log", 0, o1)
	p1c := lines("one", 5, 1)
	mustAppend(t, d, s1, o1, end1b, p1c)
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "a", "b", "c.log")); got != p1+p1b+p1c {
		t.Errorf("a/b/c.log = %q, want %q", got, p1+p1b+p1c)
	}
}

// Source offsets need not equal target bytes: the stream's offset is what the
// collector says, the file grows by len(p).
func TestSourceOffsetsAreTheCollectors(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	if err := s.Append(o, chunk(0, 1000, []byte("abc\n"))); err != nil {
		t.Fatalf("Append(0, 1000) = %v", err)
	}
	if err := s.Append(o, chunk(4, 8, []byte("def\n"))); !errors.Is(err, target.ErrOffset) {
		t.Fatalf("Append(4, 8) after end 1000 = %v, want ErrOffset", err)
	}
	if err := s.Append(o, chunk(1000, 2000, []byte("def\n"))); err != nil {
		t.Fatalf("Append(1000, 2000) = %v", err)
	}
	acks := mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != 2000 {
		t.Errorf("ack = %+v, want offset 2000", a)
	}
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "x.log")); got != "abc\ndef\n" {
		t.Errorf("x.log = %q", got)
	}
}

func TestOffsetAndOwner(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o1, o2 := &owner{"conn1"}, &owner{"conn2"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "x.log", 0, o1)
	end := mustAppend(t, d, s, o1, 0, "a\n")

	for _, c := range []struct {
		name   string
		owner  stream.Owner
		offset uint64
		want   error
	}{
		{"gap", o1, end + 1, target.ErrOffset},
		{"overlap", o1, end - 1, target.ErrOffset},
		{"from start", o1, 0, target.ErrOffset},
		{"not owner", o2, end, target.ErrNotOwner},
		{"nil owner", nil, end, target.ErrNotOwner},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.Append(c.owner, chunk(c.offset, c.offset+2, []byte("b\n")))
			if !errors.Is(err, c.want) {
				t.Errorf("Append(%d) = %v, want %v", c.offset, err, c.want)
			}
		})
	}

	// Takeover: the second Attach resumes at the end of what was appended;
	// the first owner is locked out.
	s2, off, committed := mustAttach(t, d, k, "x.log", 0, o2)
	if s2 != s {
		t.Errorf("Attach of an in-memory stream returned a new *Stream")
	}
	if off != end || committed != 0 {
		t.Errorf("Attach(takeover) = offset %d, committed %d, want %d, 0", off, committed, end)
	}
	if err := s.Append(o1, chunk(end, end+2, []byte("b\n"))); !errors.Is(err, target.ErrNotOwner) {
		t.Errorf("Append by previous owner = %v, want ErrNotOwner", err)
	}
	end = mustAppend(t, d, s2, o2, end, "c\n")

	// The ack names the owner at commit time.
	acks := mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.Owner != o2 || a.At.Offset != end {
		t.Errorf("ack = %+v, want owner conn2 offset %d", a, end)
	}

	// Detach by the old owner does nothing; by the owner it releases.
	s.Detach(o1)
	end = mustAppend(t, d, s, o2, end, "d\n")
	s.Detach(o2)
	if err := s.Append(o2, chunk(end, end+2, []byte("e\n"))); !errors.Is(err, target.ErrNotOwner) {
		t.Errorf("Append after Detach = %v, want ErrNotOwner", err)
	}
	acks = mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.Owner != nil || a.At.Offset != end {
		t.Errorf("ack after Detach = %+v, want owner nil offset %d", a, end)
	}
	s3, off, _ := mustAttach(t, d, k, "x.log", 0, o1)
	if off != end {
		t.Errorf("Attach after Detach = offset %d, want %d", off, end)
	}
	mustAppend(t, d, s3, o1, end, "e\n")
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "x.log")); got != "a\nc\nd\ne\n" {
		t.Errorf("x.log = %q, want %q", got, "a\nc\nd\ne\n")
	}
}

func TestAttachAcked(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	k := key("c", 1)

	// The collector knows more than this processor: resume at acked.
	s, off, committed := mustAttach(t, d, k, "x.log", 500, o)
	if off != 500 || committed != 500 {
		t.Fatalf("Attach(acked 500) = offset %d, committed %d, want 500, 500", off, committed)
	}
	if err := s.Append(o, chunk(0, 2, []byte("a\n"))); !errors.Is(err, target.ErrOffset) {
		t.Errorf("Append(0) after acked 500 = %v, want ErrOffset", err)
	}
	end := mustAppend(t, d, s, o, 500, "a\n")
	acks := mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end {
		t.Errorf("ack = %+v, want offset %d", a, end)
	}

	// An acked below the stream's offset changes nothing.
	_, off, committed = mustAttach(t, d, k, "x.log", 100, o)
	if off != end || committed != end {
		t.Errorf("Attach(acked 100) = offset %d, committed %d, want %d, %d", off, committed, end, end)
	}
	mustClose(t, d)

	// Acked alone, without data, is recorded too.
	d = mustOpen(t, dir)
	k2 := key("c", 2)
	mustAttach(t, d, k2, "y.log", 777, o)
	mustClose(t, d)
	d = mustOpen(t, dir)
	for _, c := range []struct {
		k    stream.Key
		name string
		want uint64
	}{{k, "x.log", end}, {k2, "y.log", 777}} {
		_, off, _ := mustAttach(t, d, c.k, c.name, 0, o)
		if off != c.want {
			t.Errorf("Attach(%s) after reopen = %d, want %d", c.name, off, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "y.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("y.log exists without data: %v", err)
	}
}

func TestDirtyBytes(t *testing.T) {
	d := mustOpen(t, t.TempDir())
	o := &owner{"c"}
	if got := d.DirtyBytes(); got != 0 {
		t.Fatalf("DirtyBytes() on open = %d, want 0", got)
	}
	s1, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	s2, _, _ := mustAttach(t, d, key("c", 2), "y/z.log", 0, o)
	e1 := mustAppend(t, d, s1, o, 0, strings.Repeat("x", 99)+"\n")
	if got := d.DirtyBytes(); got != 100 {
		t.Errorf("DirtyBytes() = %d, want 100", got)
	}
	mustAppend(t, d, s2, o, 0, "abc\n")
	mustAppend(t, d, s1, o, e1, "de\n")
	if got := d.DirtyBytes(); got != 107 {
		t.Errorf("DirtyBytes() = %d, want 107", got)
	}
	// A rejected append counts nothing.
	_ = s1.Append(o, chunk(0, 3, []byte("no\n")))
	if got := d.DirtyBytes(); got != 107 {
		t.Errorf("DirtyBytes() after rejected append = %d, want 107", got)
	}
	mustCommit(t, d)
	if got := d.DirtyBytes(); got != 0 {
		t.Errorf("DirtyBytes() after commit = %d, want 0", got)
	}
}

func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	d2, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
	if err == nil {
		d2.Close()
		t.Fatalf("second Open(%s) = nil error, want in use", dir)
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open(%s) = %v, want an in-use error", dir, err)
	}
	// The first Dir is unharmed, and once closed the dir opens again.
	o := &owner{"c"}
	s, _, _ := mustAttach(t, d, key("c", 1), "x.log", 0, o)
	mustAppend(t, d, s, o, 0, "a\n")
	mustClose(t, d)
	mustClose(t, mustOpen(t, dir))
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, dir string }{
		{"missing", filepath.Join(dir, "missing")},
		{"not a directory", notDir},
	} {
		t.Run(c.name, func(t *testing.T) {
			if d, err := target.Open(target.Config{Dir: c.dir, Logger: quietLogger()}); err == nil {
				d.Close()
				t.Errorf("Open(%s) = nil error", c.dir)
			}
		})
	}
}

func TestAttachAfterClose(t *testing.T) {
	d := mustOpen(t, t.TempDir())
	mustClose(t, d)
	if _, _, _, err := attachAt(d, key("c", 1), mustName(t, "x.log"), 0, &owner{"c"}); err == nil {
		t.Errorf("Attach after Close = nil error")
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir, outside string)
		// outsideFile, if set, must stay as it is.
		outsideFile string
	}{
		{"parent is a regular file", func(t *testing.T, dir, _ string) {
			writeFile(t, filepath.Join(dir, "a"), "keep\n")
		}, ""},
		{"grandparent is a regular file", func(t *testing.T, dir, _ string) {
			writeFile(t, filepath.Join(dir, "a"), "keep\n")
		}, ""},
		{"name is a directory", func(t *testing.T, dir, _ string) {
			if err := os.MkdirAll(filepath.Join(dir, "a", "b.log"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"parent symlink leads out", func(t *testing.T, dir, outside string) {
			if err := os.Symlink(outside, filepath.Join(dir, "a")); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"file symlink leads out", func(t *testing.T, dir, outside string) {
			writeFile(t, filepath.Join(outside, "victim"), "keep\n")
			if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "a", "b.log")); err != nil {
				t.Fatal(err)
			}
		}, "victim"},
		{"relative symlink leads out", func(t *testing.T, dir, outside string) {
			rel, err := filepath.Rel(dir, outside)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(rel, filepath.Join(dir, "a")); err != nil {
				t.Fatal(err)
			}
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			c.setup(t, dir, outside)
			name := "a/b.log"
			if c.name == "grandparent is a regular file" {
				name = "a/b/c.log"
			}
			d := mustOpen(t, dir)
			o := &owner{"c"}
			s, _, _ := mustAttach(t, d, key("c", 1), name, 0, o)
			err := s.Append(o, chunk(0, 2, []byte("x\n")))
			if !errors.Is(err, target.ErrName) {
				t.Errorf("Append(%q) = %v, want ErrName", name, err)
			}
			// The stream did not move; a retry fails the same way.
			if err := s.Append(o, chunk(0, 2, []byte("x\n"))); !errors.Is(err, target.ErrName) {
				t.Errorf("second Append(%q) = %v, want ErrName", name, err)
			}
			if _, err := d.Commit(); err != nil {
				t.Errorf("Commit() = %v", err)
			}
			mustClose(t, d)
			ents, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.Name() != c.outsideFile {
					t.Errorf("%s was written outside the target dir", e.Name())
				}
			}
			if c.outsideFile != "" {
				if got := readFile(t, filepath.Join(outside, c.outsideFile)); got != "keep\n" {
					t.Errorf("outside file = %q, want %q", got, "keep\n")
				}
			}
			if c.name == "parent is a regular file" || c.name == "grandparent is a regular file" {
				if got := readFile(t, filepath.Join(dir, "a")); got != "keep\n" {
					t.Errorf("file in the way = %q, want %q", got, "keep\n")
				}
			}
		})
	}
}

// A symlink is never followed, not even one that stays inside the target
// dir: it is how a name would reach the state or a file tracked under
// another name.
func TestNameSymlinkInside(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real/y.log", filepath.Join(dir, "y.log")); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, dir)
	o := &owner{"c"}
	for i, name := range []string{"link/x.log", "y.log"} {
		s, _, _ := mustAttach(t, d, key("c", i), name, 0, o)
		err := s.Append(o, chunk(0, 2, []byte("a\n")))
		if !errors.Is(err, target.ErrName) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Append to %s = %v, want ErrName naming the symbolic link", name, err)
		}
	}
	mustClose(t, d)
	if ents, _ := os.ReadDir(filepath.Join(dir, "real")); len(ents) != 0 {
		t.Errorf("real/ holds %v, want nothing", ents)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEviction(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	o := &owner{"c"}
	k := key("c", 1)

	s, _, _ := mustAttach(t, d, k, "x.log", 0, o)
	end := mustAppend(t, d, s, o, 0, "a\n")
	mustCommit(t, d)
	// Attached: kept.
	if s2, _, _ := mustAttach(t, d, k, "x.log", 0, o); s2 != s {
		t.Fatalf("attached stream was dropped after commit")
	}

	end = mustAppend(t, d, s, o, end, "b\n")
	s.Detach(o)
	acks := mustCommit(t, d)
	if a, ok := ackFor(t, acks, s); !ok || a.At.Offset != end || a.Owner != nil {
		t.Errorf("ack = %+v, want offset %d owner nil", a, end)
	}
	// Detached and committed: dropped; Attach reloads from the state store.
	s2, off, committed := mustAttach(t, d, k, "x.log", 0, o)
	if s2 == s {
		t.Errorf("detached, committed stream is still in memory")
	}
	if off != end || committed != end {
		t.Errorf("Attach after eviction = offset %d, committed %d, want %d", off, committed, end)
	}
	if err := s.Append(o, chunk(end, end+2, []byte("z\n"))); !errors.Is(err, target.ErrNotOwner) {
		t.Errorf("Append through evicted stream = %v, want ErrNotOwner", err)
	}
	end = mustAppend(t, d, s2, o, end, "c\n")
	mustClose(t, d)
	if got := readFile(t, filepath.Join(dir, "x.log")); got != "a\nb\nc\n" {
		t.Errorf("x.log = %q, want %q", got, "a\nb\nc\n")
	}

	// A detached stream with uncommitted data stays until its commit.
	d = mustOpen(t, dir)
	s, _, _ = mustAttach(t, d, k, "x.log", 0, o)
	end = mustAppend(t, d, s, o, end, "d\n")
	s.Detach(o)
	if s2, off, _ := mustAttach(t, d, k, "x.log", 0, o); s2 != s || off != end {
		t.Errorf("Attach of detached uncommitted stream = (%p, %d), want (%p, %d)", s2, off, s, end)
	}
}

// A stream that is detached after its last commit is never dropped: eviction
// only looks at streams touched by the commit that runs, and with nothing
// dirty Commit returns before evicting.
func TestEvictionAfterLastCommit(t *testing.T) {
	d := mustOpen(t, t.TempDir())
	o := &owner{"c"}
	k := key("c", 1)
	s, _, _ := mustAttach(t, d, k, "x.log", 0, o)
	mustAppend(t, d, s, o, 0, "a\n")
	mustCommit(t, d)
	s.Detach(o)
	mustCommit(t, d)
	// Other traffic commits too.
	s3, _, _ := mustAttach(t, d, key("c", 2), "y.log", 0, o)
	mustAppend(t, d, s3, o, 0, "b\n")
	mustCommit(t, d)
	if s2, _, _ := mustAttach(t, d, k, "x.log", 0, o); s2 == s {
		t.Errorf("stream detached after its last commit is still in memory")
	}
}
