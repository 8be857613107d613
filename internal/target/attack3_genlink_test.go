//go:build unix

package target_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/relpath"
	"thunder/internal/target"
)

// Attack 3: the generation file is opened by name, following a link, and
// written at offset 0 by every commit. A link at .thunder/generation to a
// target file makes each commit overwrite that file's first 8 bytes, lines
// long acknowledged (and its first 8 bytes, read as a generation, make
// every start see a rollback). The state store and the state directory are
// never followed through a link; the generation file must not be either.
func TestAttack3GenerationFileLink(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	_, o, off := writeCommitted(t, d, key("c", 1), "a.log", 20<<10)
	mustClose(t, d)
	want := readFile(t, filepath.Join(dir, "a.log"))
	gen := generationPath(dir)
	if err := os.Remove(gen); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "a.log"), gen); err != nil {
		t.Fatal(err)
	}

	// Open may refuse the link, or open a generation file of its own;
	// it must not write through the link.
	d, err := target.Open(target.Config{Dir: dir, Logger: quietLogger()})
	if err == nil {
		s, _, _ := mustAttach(t, d, key("c", 1), "a.log", off, o)
		mustAppend(t, d, s, o, off, "more\n")
		mustCommit(t, d)
		mustClose(t, d)
	}
	if got := readFile(t, filepath.Join(dir, "a.log")); got[:len(want)] != want {
		t.Fatalf("a.log's acknowledged bytes changed through a link at %s: first bytes %q, want %q",
			filepath.Join(relpath.StateDir, "generation"), got[:8], want[:8])
	}
}

// A target name hard-linked to the generation file is the state under
// another name: refused, as for state.db.
func TestAttack3GenerationFileHardLinkedAsTarget(t *testing.T) {
	dir := t.TempDir()
	d := mustOpen(t, dir)
	if err := os.Link(generationPath(dir), filepath.Join(dir, "g.log")); err != nil {
		t.Fatal(err)
	}
	o := &owner{"g.log"}
	s, _, _ := mustAttach(t, d, key("c", 1), "g.log", 0, o)
	if err := s.Append(o, chunk(0, 5, []byte("line\n"))); !errors.Is(err, target.ErrName) {
		t.Fatalf("Append to a name linked to the generation file = %v, want ErrName", err)
	}
}
