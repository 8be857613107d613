// Package layout holds the processor's --target-layout: the template that
// maps a stream's collector (host), its name (file) and the day it is
// received on to its path in the target dir. Every path it renders passes
// relpath.Clean, so a layout confines names exactly as a plain name is.
package layout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"thunder/internal/relpath"
)

// Default is the original behaviour: a file is written under its own name,
// whatever host sent it, so all hosts' nginx/access.log append to one file.
const Default = "{file}"

// DateFormat is how {date} renders: the UTC day the processor received the
// bytes on.
const DateFormat = "2006-01-02"

// Placeholders of a template.
const (
	Host = "{host}" // the collector's authenticated name
	File = "{file}" // the stream's name, as the collector sent it, cleaned
	Date = "{date}" // YYYY-MM-DD, UTC, of the processor's receipt
)

// ErrHost means a collector name cannot stand for {host}: it would not be
// one path component of its own.
var ErrHost = errors.New("layout: collector name is not a path component")

// Layout is a parsed template. The zero Layout is Default.
type Layout struct {
	parts []string // literal text and placeholders, in order
	src   string
	host  bool
	dated bool
}

// Parse checks a template: not empty, relative, no ".." component, only
// the placeholders {host}, {file} and {date}, at least one of {host} and
// {file} (without either, every line of every host would go to one file),
// and what it renders is a name relpath.Clean accepts.
func Parse(s string) (Layout, error) {
	l := Layout{src: s}
	switch {
	case s == "":
		return l, errors.New("empty layout (the default is " + Default + ")")
	case strings.HasPrefix(s, "/"):
		return l, errors.New("absolute layout: it is a path inside the target dir")
	case strings.Contains("/"+s+"/", "/../"):
		return l, errors.New("layout has a .. component: it must stay inside the target dir")
	}
	var file bool
	for rest := s; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			l.parts = append(l.parts, rest)
			break
		}
		if i > 0 {
			l.parts = append(l.parts, rest[:i])
		}
		rest = rest[i:]
		j := strings.IndexByte(rest, '}')
		if rest[0] == '}' || j < 0 {
			return l, fmt.Errorf("unmatched brace in %q (placeholders are %s, %s, %s)", s, Host, File, Date)
		}
		p := rest[:j+1]
		switch p {
		case Host:
			l.host = true
		case File:
			file = true
		case Date:
			l.dated = true
		default:
			return l, fmt.Errorf("unknown placeholder %s (placeholders are %s, %s, %s)", p, Host, File, Date)
		}
		l.parts = append(l.parts, p)
		rest = rest[j+1:]
	}
	if !file && !l.host {
		return l, fmt.Errorf("layout %q has neither %s nor %s: every line of every host would go to one file", s, Host, File)
	}
	if _, err := l.Render("host", mustClean("file"), time.Time{}); err != nil {
		return l, err
	}
	return l, nil
}

func mustClean(s string) relpath.Name {
	n, err := relpath.Clean(s)
	if err != nil {
		panic(err)
	}
	return n
}

// String returns the template.
func (l Layout) String() string {
	if l.src == "" {
		return Default
	}
	return l.src
}

// IsDefault reports whether l is Default: names are the target paths.
func (l Layout) IsDefault() bool { return l.String() == Default }

// Dated reports whether l has {date}: a stream's path changes at midnight.
func (l Layout) Dated() bool { return l.dated }

// Render returns the target path of file sent by host and received at t,
// cleaned and checked by relpath.Clean. A host that is not one path
// component ("a/b", ".", "..") is refused with ErrHost, so that no host
// can write into another host's tree.
func (l Layout) Render(host string, file relpath.Name, t time.Time) (relpath.Name, error) {
	if l.IsDefault() {
		return file, nil
	}
	if l.host && (host == "" || host == "." || host == ".." || strings.ContainsRune(host, '/')) {
		return relpath.Name{}, fmt.Errorf("%w: %q", ErrHost, host)
	}
	var b strings.Builder
	for _, p := range l.parts {
		switch p {
		case Host:
			b.WriteString(host)
		case File:
			b.WriteString(file.String())
		case Date:
			b.WriteString(t.UTC().Format(DateFormat))
		default:
			b.WriteString(p)
		}
	}
	return relpath.Clean(b.String())
}

// NextDay returns the first instant after t at which a dated layout renders
// another {date}: the next UTC midnight.
func NextDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}
