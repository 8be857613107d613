package relpath

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// StateDir is the processor's own hidden state directory inside the target
// directory. No name may be it or lie inside it.
const StateDir = ".thunder"

// Limits on a name, checked by [Clean].
const (
	// MaxNameBytes is the longest name accepted, in bytes, before cleaning.
	MaxNameBytes = 4096
	// MaxComponentBytes is the longest path component accepted, in bytes
	// (NAME_MAX on Linux).
	MaxComponentBytes = 255
	// MaxDepth is the largest number of components accepted after cleaning.
	MaxDepth = 32
)

// Errors returned by [Clean], wrapped with the offending name.
var (
	ErrEmpty         = errors.New("relpath: empty name")
	ErrAbsolute      = errors.New("relpath: absolute name")
	ErrNUL           = errors.New("relpath: name contains NUL")
	ErrDotDot        = errors.New("relpath: name contains .. component")
	ErrControl       = errors.New("relpath: name contains control character")
	ErrBackslash     = errors.New("relpath: name contains backslash")
	ErrInvalidUTF8   = errors.New("relpath: name is not valid UTF-8")
	ErrTooLong       = errors.New("relpath: name too long")
	ErrTooDeep       = errors.New("relpath: name too deep")
	ErrStateDir      = errors.New("relpath: name inside state directory")
	ErrTrailingSlash = errors.New("relpath: name ends in a directory")
)

// Clean returns name cleaned with [path.Clean] semantics: always '/'
// separators, whatever the operating system, with "." components and
// repeated slashes removed. It refuses, with an error wrapping one of the
// package's sentinel errors, a name that
//
//   - is empty, or "." after cleaning ([ErrEmpty]);
//   - is longer than [MaxNameBytes] or has a component longer than
//     [MaxComponentBytes] ([ErrTooLong]), or has more than [MaxDepth]
//     components ([ErrTooDeep]);
//   - is not valid UTF-8 ([ErrInvalidUTF8]);
//   - contains NUL ([ErrNUL]), another control character, C0, DEL or C1
//     ([ErrControl]), or a backslash ([ErrBackslash]);
//   - starts with '/' ([ErrAbsolute]);
//   - has a ".." component anywhere, even one that would not escape, such
//     as "a/../b" ([ErrDotDot]): collectors never send one;
//   - ends in '/' or "/." and so names a directory ([ErrTrailingSlash]);
//   - is [StateDir] or inside it after cleaning ([ErrStateDir]).
//
// Clean is safe for concurrent use.
func Clean(name string) (Name, error) {
	if err := checkBytes(name); err != nil {
		return Name{}, fmt.Errorf("%w: %q", err, name)
	}
	if err := checkComponents(name); err != nil {
		return Name{}, fmt.Errorf("%w: %q", err, name)
	}
	clean := path.Clean(name)
	if err := checkCleaned(clean); err != nil {
		return Name{}, fmt.Errorf("%w: %q", err, name)
	}
	return Name{clean}, nil
}

// Name is a name that passed [Clean]. Only Clean makes one, so code that
// takes a Name cannot be handed an unchecked name; the zero Name is
// empty and is refused by IsZero checks.
type Name struct{ s string }

// String returns the cleaned name.
func (n Name) String() string { return n.s }

// IsZero reports whether n is the zero Name (not made by Clean).
func (n Name) IsZero() bool { return n.s == "" }

// checkBytes checks the raw name character by character.
func checkBytes(name string) error {
	switch {
	case name == "":
		return ErrEmpty
	case len(name) > MaxNameBytes:
		return ErrTooLong
	case !utf8.ValidString(name):
		return ErrInvalidUTF8
	case strings.IndexByte(name, 0) >= 0:
		return ErrNUL
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return ErrControl
	case strings.IndexByte(name, '\\') >= 0:
		return ErrBackslash
	case name[0] == '/':
		return ErrAbsolute
	}
	return nil
}

// checkComponents checks the raw components, before cleaning can hide them.
func checkComponents(name string) error {
	last := ""
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return ErrDotDot
		}
		if len(c) > MaxComponentBytes {
			return ErrTooLong
		}
		last = c
	}
	if (last == "" || last == ".") && name != "." {
		return ErrTrailingSlash
	}
	return nil
}

// checkCleaned checks the result of path.Clean.
func checkCleaned(clean string) error {
	if clean == "." {
		return ErrEmpty
	}
	if strings.Count(clean, "/")+1 > MaxDepth {
		return ErrTooDeep
	}
	first, _, _ := strings.Cut(clean, "/")
	if first == StateDir {
		return ErrStateDir
	}
	return nil
}
