package relpath_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"thunder/internal/relpath"
)

func TestCleanAccepts(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "app.log", "app.log"},
		{"nested", "web/nginx/access.log", "web/nginx/access.log"},
		{"dot prefix", "./app.log", "app.log"},
		{"inner dot", "a/./b", "a/b"},
		{"double slash", "a//b", "a/b"},
		{"hidden file", ".hidden", ".hidden"},
		{"state dir prefix only", ".thunderbird/x", ".thunderbird/x"},
		{"state dir not first", "a/.thunder/x", "a/.thunder/x"},
		{"state dir other case", ".Thunder/x", ".Thunder/x"},
		{"dots in name", "a..b/..c/d..", "a..b/..c/d.."},
		{"three dots", ".../x", ".../x"},
		{"unicode", "журнал/日志.log", "журнал/日志.log"},
		{"spaces", " a b /c ", " a b /c "},
		{"max component", strings.Repeat("x", relpath.MaxComponentBytes), strings.Repeat("x", relpath.MaxComponentBytes)},
		{"max depth", strings.Repeat("d/", relpath.MaxDepth-1) + "f", strings.Repeat("d/", relpath.MaxDepth-1) + "f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := relpath.Clean(tt.in)
			got := n.String()
			if err != nil || got != tt.want {
				t.Errorf("Clean(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCleanRefuses(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", "", relpath.ErrEmpty},
		{"dot", ".", relpath.ErrEmpty},
		{"absolute", "/etc/passwd", relpath.ErrAbsolute},
		{"root", "/", relpath.ErrAbsolute},
		{"dotdot", "..", relpath.ErrDotDot},
		{"dotdot escape", "../x", relpath.ErrDotDot},
		{"dotdot inside", "a/../b", relpath.ErrDotDot},
		{"dotdot last", "a/..", relpath.ErrDotDot},
		{"dotdot deep escape", "a/b/../../../etc/passwd", relpath.ErrDotDot},
		{"NUL", "a\x00b", relpath.ErrNUL},
		{"NUL only", "\x00", relpath.ErrNUL},
		{"newline", "a\nb", relpath.ErrControl},
		{"tab", "a\tb", relpath.ErrControl},
		{"escape", "a\x1b[31m", relpath.ErrControl},
		{"DEL", "a\x7f", relpath.ErrControl},
		{"C1", "a\u0085b", relpath.ErrControl},
		{"backslash", `a\b`, relpath.ErrBackslash},
		{"windows dotdot", `..\x`, relpath.ErrBackslash},
		{"invalid UTF-8", "a\xffb", relpath.ErrInvalidUTF8},
		{"overlong UTF-8 slash", "a\xc0\xafb", relpath.ErrInvalidUTF8},
		{"too long", strings.Repeat("a/", relpath.MaxNameBytes/2) + "a", relpath.ErrTooLong},
		{"component too long", strings.Repeat("x", relpath.MaxComponentBytes+1), relpath.ErrTooLong},
		{"too deep", strings.Repeat("d/", relpath.MaxDepth) + "f", relpath.ErrTooDeep},
		{"state dir", ".thunder", relpath.ErrStateDir},
		{"inside state dir", ".thunder/state.db", relpath.ErrStateDir},
		{"state dir after dot", "./.thunder/state.db", relpath.ErrStateDir},
		{"state dir after slashes", ".//.thunder", relpath.ErrStateDir},
		{"trailing slash", "a/", relpath.ErrTrailingSlash},
		{"trailing dot", "a/.", relpath.ErrTrailingSlash},
		{"dot slash", "./", relpath.ErrTrailingSlash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := relpath.Clean(tt.in)
			got := n.String()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Clean(%q) = %q, %v, want %v", tt.in, got, err, tt.want)
			}
			if got != "" {
				t.Errorf("Clean(%q) = %q with error, want \"\"", tt.in, got)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("Clean(%q) error %q does not name the input", tt.in, err)
			}
		})
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{
		"app.log", "a/b/c.log", "./a", "a//b", ".", "..", "../x", "a/../b",
		"a/b/../../..", "/etc/passwd", "//x", "a\x00b", ".thunder",
		".thunder/state.db", "./.thunder", "a/./.thunder", `..\..\x`,
		"a\xff", "a\nb", "a/", "a/.", "...", ". /x", "\u2025/x",
		strings.Repeat("a/", 40), strings.Repeat("x", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := relpath.Clean(in)
		out := n.String()
		if err != nil {
			if out != "" {
				t.Fatalf("Clean(%q) = %q, %v: output with error", in, out, err)
			}
			return
		}
		if !filepath.IsLocal(out) {
			t.Errorf("Clean(%q) = %q, not local", in, out)
		}
		if strings.IndexByte(out, 0) >= 0 {
			t.Errorf("Clean(%q) = %q, contains NUL", in, out)
		}
		if out == relpath.StateDir || strings.HasPrefix(out, relpath.StateDir+"/") {
			t.Errorf("Clean(%q) = %q, in state dir", in, out)
		}
		for c := range strings.SplitSeq(out, "/") {
			if c == ".." || c == "." || c == "" {
				t.Errorf("Clean(%q) = %q, has component %q", in, out, c)
			}
		}
		n2, err := relpath.Clean(out)
		again := n2.String()
		if err != nil || again != out {
			t.Errorf("Clean(Clean(%q)) = %q, %v, want %q, nil", in, again, err, out)
		}
	})
}
