package layout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"thunder/internal/relpath"
)

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"", "empty"},
		{"/srv/{file}", "absolute"},
		{"../{file}", ".."},
		{"{host}/../{file}", ".."},
		{"{host}/..", ".."},
		{"{hots}/{file}", "unknown placeholder {hots}"},
		{"{File}", "unknown placeholder {File}"},
		{"{host/{file}", "unknown placeholder {host/{file}"},
		{"{file", "unmatched brace"},
		{"file}", "unmatched brace"},
		{"{date}.log", "neither"},
		{"all.log", "neither"},
		{".thunder/{file}", "state directory"},
		{"{host}/", "ends in a directory"},
		{"{host}\\{file}", "backslash"},
		{"{host}/\x01{file}", "control"},
	} {
		_, err := Parse(tc.tmpl)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", tc.tmpl, err, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	at := time.Date(2026, 12, 2, 23, 59, 59, 0, time.FixedZone("east", 3*3600)) // 20:59:59 UTC
	file, err := relpath.Clean("./nginx//access.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ tmpl, want string }{
		{Default, "nginx/access.log"},
		{"{host}/{file}", "web-1/nginx/access.log"},
		{"{host}", "web-1"},
		{"{host}/{date}/{file}", "web-1/2026-12-02/nginx/access.log"},
		{"{date}/{host}.log", "2026-12-02/web-1.log"},
		{"by-host/{host}-{date}/./{file}", "by-host/web-1-2026-12-02/nginx/access.log"},
	} {
		l, err := Parse(tc.tmpl)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.tmpl, err)
		}
		got, err := l.Render("web-1", file, at)
		if err != nil || got.String() != tc.want {
			t.Errorf("%q: Render = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
		if l.String() != tc.tmpl || l.IsDefault() != (tc.tmpl == Default) || l.Dated() != strings.Contains(tc.tmpl, Date) {
			t.Errorf("%q: String %q, IsDefault %v, Dated %v", tc.tmpl, l.String(), l.IsDefault(), l.Dated())
		}
	}
	if got, _ := (Layout{}).Render("h", file, at); got != file || !(Layout{}).IsDefault() {
		t.Errorf("the zero Layout renders %q, want the name itself", got)
	}
}

// TestRenderHost: no collector name puts a file outside its own tree.
func TestRenderHost(t *testing.T) {
	l, err := Parse("{host}/{file}")
	if err != nil {
		t.Fatal(err)
	}
	file, _ := relpath.Clean("a.log")
	for _, host := range []string{"", ".", "..", "web-1/evil", "a/../b"} {
		if got, err := l.Render(host, file, time.Now()); !errors.Is(err, ErrHost) {
			t.Errorf("Render(host %q) = %q, %v; want ErrHost", host, got, err)
		}
	}
	if _, err := l.Render(".thunder", file, time.Now()); !errors.Is(err, relpath.ErrStateDir) {
		t.Errorf("host .thunder: %v, want relpath.ErrStateDir", err)
	}
}

func TestNextDay(t *testing.T) {
	for _, tc := range []struct{ at, want time.Time }{
		{time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 31, 23, 59, 59, 999, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 3, 1, 0, 0, 0, time.FixedZone("east", 3*3600)), time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)},
	} {
		if got := NextDay(tc.at); !got.Equal(tc.want) {
			t.Errorf("NextDay(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
