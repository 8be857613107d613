package tail_test

import (
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/tail"
)

func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		off      int64
		bufLen   int
		maxLine  int
		flush    bool
		want     string
		wantNext int64
		wantRes  tail.Result
		wantMore bool
	}{
		{"empty", "", 0, 16, 8, false, "", 0, tail.Nothing, false},
		{"one line", "ab\n", 0, 16, 8, false, "ab\n", 3, tail.Lines, false},
		{"holds partial", "ab\ncd", 0, 16, 8, false, "ab\n", 3, tail.Lines, false},
		{"only partial", "ab\ncd", 3, 16, 8, false, "", 3, tail.Nothing, false},
		{"flush partial", "ab\ncd", 3, 16, 8, true, "cd\n", 5, tail.Flushed, false},
		{"empty lines kept", "\n\n\n", 0, 16, 8, false, "\n\n\n", 3, tail.Lines, false},
		{"binary kept", "a\x00\xff\n", 0, 16, 8, false, "a\x00\xff\n", 4, tail.Lines, false},
		{"buffer full cuts at last newline", "aaa\nbbb\nccc\n", 0, 10, 8, false, "aaa\nbbb\n", 8, tail.Lines, true},
		{"long partial line split", "0123456789abc\n", 0, 10, 8, false, "01234567\n", 8, tail.Split, true},
		{"split rest", "0123456789abc\n", 8, 10, 8, false, "89abc\n", 14, tail.Lines, false},
		{"long complete line split", "0123456789\nab\n", 0, 32, 4, false, "0123\n", 4, tail.Split, true},
		{"lines before a long line", "ab\n0123456789\n", 0, 32, 4, false, "ab\n", 3, tail.Lines, true},
		{"line of exactly max kept", "0123\nab\n", 0, 32, 4, false, "0123\nab\n", 8, tail.Lines, false},
		{"partial of exactly max waits", "0123", 0, 32, 4, false, "", 0, tail.Nothing, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, next, res, more, err := tail.Read(f, tt.off, make([]byte, tt.bufLen), tt.maxLine, tt.flush)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want || next != tt.wantNext || res != tt.wantRes {
				t.Errorf("Read(%q, %d) = %q, %d, %v; want %q, %d, %v", tt.content, tt.off, got, next, res, tt.want, tt.wantNext, tt.wantRes)
			}
			if tt.wantMore != more && tt.wantRes != tail.Nothing {
				t.Errorf("Read(%q, %d) more = %v, want %v", tt.content, tt.off, more, tt.wantMore)
			}
		})
	}
}
