package linecheck_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/linecheck"
)

// line returns line seq of writer id, 100 bytes long.
func line(t *testing.T, id string, seq uint64) string {
	t.Helper()
	b, err := linecheck.AppendLine(nil, id, seq, linecheck.DefaultLineBytes)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lines returns lines from to to-1 of writer id.
func lines(t *testing.T, id string, from, to uint64) string {
	t.Helper()
	var sb strings.Builder
	for seq := from; seq < to; seq++ {
		sb.WriteString(line(t, id, seq))
	}
	return sb.String()
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func rotatedAlias(rel string) string {
	return strings.TrimSuffix(rel, ".1")
}

func TestAppendLine(t *testing.T) {
	got := line(t, "w-1", 42)
	if len(got) != linecheck.DefaultLineBytes {
		t.Fatalf("len(AppendLine) = %d, want %d", len(got), linecheck.DefaultLineBytes)
	}
	if !strings.HasPrefix(got, "w-1 000000000042 ") || !strings.HasSuffix(got, "\n") {
		t.Errorf("AppendLine(w-1, 42) = %q, want prefix %q and a final newline", got, "w-1 000000000042 ")
	}
	payload := strings.TrimSuffix(strings.TrimPrefix(got, "w-1 000000000042 "), "\n")
	if strings.ContainsAny(payload, " \t\n") {
		t.Errorf("payload %q contains white space", payload)
	}
	if other := line(t, "w-1", 43); other[17:] == got[17:] {
		t.Errorf("payloads of seq 42 and 43 are equal: %q", got[17:])
	}
	for _, bad := range []struct {
		id        string
		seq       uint64
		lineBytes int
	}{
		{"", 0, 100},
		{"a b", 0, 100},
		{"a/b", 0, 100},
		{"w", linecheck.MaxSeq + 1, 100},
		{"w", 0, 16},
	} {
		if _, err := linecheck.AppendLine(nil, bad.id, bad.seq, bad.lineBytes); err == nil {
			t.Errorf("AppendLine(%q, %d, %d) = nil error, want an error", bad.id, bad.seq, bad.lineBytes)
		}
	}
	if b, err := linecheck.AppendLine(nil, "w", 0, 17); err != nil || len(b) != 17 {
		t.Errorf("AppendLine(w, 0, 17) = %q, %v; want 17 bytes", b, err)
	}
}

func TestVerify(t *testing.T) {
	w1 := linecheck.Expect{Writer: "w1", Name: "a.log", Lines: 10}
	w2 := linecheck.Expect{Writer: "w2", Name: "sub/b.log", Lines: 10}
	// interleaved is what a write split in two looks like when another
	// writer's line lands in the middle.
	l5 := line(t, "w1", 5)
	interleaved := l5[:40] + line(t, "w2", 0) + l5[40:]
	// spliced joins the start of one line to the end of another of the same
	// writer: it parses, but the payload is wrong.
	spliced := line(t, "w1", 5)[:50] + line(t, "w1", 6)[50:]

	tests := []struct {
		name   string
		files  map[string]string
		expect []linecheck.Expect
		alias  func(string) string
		want   linecheck.Report // Problems not compared
	}{
		{
			name:   "clean",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 10), "sub/b.log": lines(t, "w2", 0, 10)},
			expect: []linecheck.Expect{w1, w2},
			want:   linecheck.Report{Files: 2, Lines: 20},
		},
		{
			name: "two writers interleaved by line in one file",
			files: map[string]string{"a.log": lines(t, "w1", 0, 5) + lines(t, "w3", 0, 3) +
				lines(t, "w1", 5, 10) + lines(t, "w3", 3, 10)},
			expect: []linecheck.Expect{w1, {Writer: "w3", Name: "a.log", Lines: 10}},
			want:   linecheck.Report{Files: 1, Lines: 20},
		},
		{
			name:   "empty dir",
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Lost: 10},
		},
		{
			name:   "lost",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 5) + lines(t, "w1", 6, 9)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 8, Lost: 2},
		},
		{
			name:   "dup in one file",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 4) + lines(t, "w1", 3, 10)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 11, Dup: 1},
		},
		{
			name:   "dup across rotated files",
			files:  map[string]string{"a.log.1": lines(t, "w1", 0, 6), "a.log": lines(t, "w1", 5, 10)},
			expect: []linecheck.Expect{w1},
			alias:  rotatedAlias,
			want:   linecheck.Report{Files: 2, Lines: 11, Dup: 1},
		},
		{
			name:   "reordered",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 3) + line(t, "w1", 4) + line(t, "w1", 3) + lines(t, "w1", 5, 10)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 10, Reordered: 1},
		},
		{
			name:   "order is per file",
			files:  map[string]string{"a.log.1": lines(t, "w1", 5, 10), "a.log": lines(t, "w1", 0, 5)},
			expect: []linecheck.Expect{w1},
			alias:  rotatedAlias,
			want:   linecheck.Report{Files: 2, Lines: 10},
		},
		{
			name:   "partial last line",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 9) + strings.TrimSuffix(line(t, "w1", 9), "\n")},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 9, Lost: 1, Partial: 1},
		},
		{
			name:   "truncated last line",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 9) + line(t, "w1", 9)[:30]},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 9, Lost: 1, Partial: 1},
		},
		{
			name:   "altered payload",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 5) + strings.Replace(line(t, "w1", 5), " ", " !", 2)[:99] + "\n" + lines(t, "w1", 6, 10)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 10, Lost: 1, Corrupt: 1},
		},
		{
			name: "interleaved write",
			files: map[string]string{
				"a.log": lines(t, "w1", 0, 5) + interleaved + lines(t, "w1", 6, 10),
			},
			expect: []linecheck.Expect{w1, {Writer: "w2", Name: "a.log", Lines: 1}},
			want:   linecheck.Report{Files: 1, Lines: 11, Lost: 2, Corrupt: 2},
		},
		{
			name:   "spliced lines",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 5) + spliced + lines(t, "w1", 7, 10)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 9, Lost: 2, Corrupt: 1},
		},
		{
			name:   "garbage",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 10) + "hello world\n\n" + "w1 12 x\n"},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 13, Corrupt: 3},
		},
		{
			name:   "overlong line",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 10) + strings.Repeat("x", 3<<20) + "\n"},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 11, Corrupt: 1},
		},
		{
			name:   "misplaced",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 10) + line(t, "w2", 0), "sub/b.log": lines(t, "w2", 1, 10)},
			expect: []linecheck.Expect{w1, w2},
			want:   linecheck.Report{Files: 2, Lines: 20, Misplaced: 1},
		},
		{
			name:   "rotated file without alias is misplaced",
			files:  map[string]string{"a.log.1": lines(t, "w1", 0, 5), "a.log": lines(t, "w1", 5, 10)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 2, Lines: 10, Misplaced: 5},
		},
		{
			name:   "unexpected writer and seq",
			files:  map[string]string{"a.log": lines(t, "w1", 0, 12) + line(t, "zz", 0)},
			expect: []linecheck.Expect{w1},
			want:   linecheck.Report{Files: 1, Lines: 13, Unexpected: 3},
		},
		{
			name: "state dir skipped at the top only",
			files: map[string]string{
				"a.log":             lines(t, "w1", 0, 10),
				".thunder/state.db": "not lines",
				"sub/.thunder/x":    lines(t, "w2", 0, 10),
			},
			expect: []linecheck.Expect{w1, {Writer: "w2", Name: "sub/.thunder/x", Lines: 10}},
			want:   linecheck.Report{Files: 2, Lines: 20},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			got, err := linecheck.Verify(dir, tt.expect, linecheck.Options{Alias: tt.alias})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			problems := got.Problems
			got.Problems = nil
			if got.String() != tt.want.String() {
				t.Errorf("Verify = %v\nwant     %v\nproblems: %q", got, tt.want, problems)
			}
			wantProblems := !tt.want.OK()
			if (len(problems) > 0) != wantProblems {
				t.Errorf("Verify problems = %q, want some: %v", problems, wantProblems)
			}
			if got.OK() != tt.want.OK() || got.Complete() != tt.want.Complete() || got.Failed() != tt.want.Failed() {
				t.Errorf("OK, Complete, Failed = %v %v %v, want %v %v %v",
					got.OK(), got.Complete(), got.Failed(), tt.want.OK(), tt.want.Complete(), tt.want.Failed())
			}
		})
	}
}

func TestVerifyLostGaps(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.log": lines(t, "w", 0, 3) + lines(t, "w", 70, 130) + lines(t, "w", 131, 200)})
	r, err := linecheck.Verify(dir, []linecheck.Expect{{Writer: "w", Name: "a.log", Lines: 250}}, linecheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lost != 67+1+50 {
		t.Errorf("Lost = %d, want %d", r.Lost, 67+1+50)
	}
	want := "lost: writer w: 118 of 250 lines, seqs 3-69,130-130,200-249"
	if len(r.Problems) != 1 || r.Problems[0] != want {
		t.Errorf("Problems = %q, want [%q]", r.Problems, want)
	}
}

func TestVerifyProblemsBounded(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.log": strings.Repeat("junk\n", 1000)})
	r, err := linecheck.Verify(dir, nil, linecheck.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Corrupt != 1000 || len(r.Problems) != 20 {
		t.Errorf("Corrupt = %d, len(Problems) = %d; want 1000, 20", r.Corrupt, len(r.Problems))
	}
}

func TestVerifyBadExpect(t *testing.T) {
	dir := t.TempDir()
	for name, expect := range map[string][]linecheck.Expect{
		"twice":    {{Writer: "w", Name: "a"}, {Writer: "w", Name: "b"}},
		"bad id":   {{Writer: "w x", Name: "a"}},
		"too many": {{Writer: "w", Name: "a", Lines: linecheck.MaxExpectLines + 1}},
	} {
		if _, err := linecheck.Verify(dir, expect, linecheck.Options{}); err == nil {
			t.Errorf("Verify(%s) = nil error, want an error", name)
		}
	}
	if _, err := linecheck.Verify(filepath.Join(dir, "missing"), nil, linecheck.Options{}); err == nil {
		t.Errorf("Verify(missing dir) = nil error, want an error")
	}
}

func BenchmarkVerify(b *testing.B) {
	const n = 1 << 20
	dir := b.TempDir()
	var buf []byte
	for seq := range uint64(n) {
		buf, _ = linecheck.AppendLine(buf, "bench", seq, linecheck.DefaultLineBytes)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.log"), buf, 0o644); err != nil {
		b.Fatal(err)
	}
	expect := []linecheck.Expect{{Writer: "bench", Name: "a.log", Lines: n}}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r, err := linecheck.Verify(dir, expect, linecheck.Options{})
		if err != nil || !r.OK() {
			b.Fatalf("Verify = %v, %v", r, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// TestVerifyAll: a writer's lines split over two directories (processors
// sharing the streams) are complete; a line in both is one duplicate.
func TestVerifyAll(t *testing.T) {
	expect := []linecheck.Expect{{Writer: "w", Name: "a.log", Lines: 10}}
	a := writeFiles(t, map[string]string{"a.log": lines(t, "w", 0, 6)})
	b := writeFiles(t, map[string]string{"a.log": lines(t, "w", 6, 10)})
	r, err := linecheck.VerifyAll([]string{a, b}, expect, linecheck.Options{})
	if err != nil || !r.OK() {
		t.Fatalf("VerifyAll(split) = %v, %v; want OK", r, err)
	}
	if r, _ := linecheck.Verify(a, expect, linecheck.Options{}); r.Lost != 4 || r.Failed() {
		t.Errorf("Verify(one half) = %v; want 4 lost and nothing else", r)
	}
	c := writeFiles(t, map[string]string{"a.log": lines(t, "w", 5, 10)})
	r, err = linecheck.VerifyAll([]string{a, c}, expect, linecheck.Options{})
	if err != nil || r.Dup != 1 || r.Lost != 0 || r.Reordered != 0 {
		t.Fatalf("VerifyAll(overlap of one line) = %v, %v; want dup=1 only", r, err)
	}
}
