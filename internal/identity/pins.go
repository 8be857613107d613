package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"
)

// Mode is how a processor checks collector identities (§12).
type Mode string

// Modes.
const (
	// ModeTOFU pins a name's key at its first successful contact (trust on
	// first use) and then accepts only that key.
	ModeTOFU Mode = "tofu"
	// ModeKnown accepts only names already pinned in the file.
	ModeKnown Mode = "known"
	// ModeOff asks for no proof: names are merely claimed.
	ModeOff Mode = "off"
)

// ParseMode parses a Mode; "" is ModeTOFU.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeTOFU, nil
	case ModeTOFU, ModeKnown, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("unknown collector identity mode %q (tofu, known or off)", s)
}

// MaxNameBytes bounds a collector name (§3).
const MaxNameBytes = 255

// CheckName reports whether n is a valid collector name (§3): 1 to
// MaxNameBytes bytes of UTF-8 without control characters (C0, DEL, C1: a
// name is printed in logs, the pin file and `thunder status`, where C1
// controls are terminal escapes).
func CheckName(n string) error {
	if n == "" || len(n) > MaxNameBytes || !utf8.ValidString(n) {
		return fmt.Errorf("invalid collector name %q", n)
	}
	for _, c := range n {
		if c < 0x20 || c >= 0x7f && c <= 0x9f {
			return fmt.Errorf("invalid collector name %q", n)
		}
	}
	return nil
}

// Errors returned by Pins.Check.
var (
	// ErrMismatch: the name is pinned to another key.
	ErrMismatch = errors.New("identity: collector pinned to another key")
	// ErrUnknown: the name is not pinned and new names are not accepted.
	ErrUnknown = errors.New("identity: collector not pinned")
	// ErrFull: the pin file reached MaxFileBytes; no new name is pinned.
	ErrFull = errors.New("identity: pin file full")
)

// Pins maps collector names to their keys, kept in a text file like SSH's
// known_hosts (§12), or in memory only when there is no file. It is safe
// for concurrent use: new names are pinned one at a time, each checked again
// once it is its turn, so of two connections claiming a new name at once the
// first pins it and the second is compared.
type Pins struct {
	path string // "" when kept in memory only

	writeMu sync.Mutex // held while a new pin is written: one at a time

	mu   sync.Mutex
	keys map[string][]byte // name → public key
	dups []string          // of the last read: names pinned twice (the first line holds)
}

// OpenPins reads the pin file at path, creating it (mode 0600) when it
// does not exist. With path "" the pins are kept in memory only.
func OpenPins(path string) (*Pins, error) {
	p := &Pins{path: path, keys: make(map[string][]byte)}
	if path == "" {
		return p, nil
	}
	if err := p.create(); err != nil {
		return nil, err
	}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// fileHeader starts a new pin file.
const fileHeader = "# thunder known collectors (docs/PROTOCOL.md §12): one line per collector,\n" +
	"# \"ed25519:<base64 key> <collector name>\". Delete a line and send SIGHUP to\n" +
	"# the processor to retire or re-key a host.\n"

// create makes the pin file when it is missing, durably.
func (p *Pins) create() error {
	_, err := p.createdNow()
	return err
}

// createdNow is create, and reports whether the file was missing.
func (p *Pins) createdNow() (bool, error) {
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create pin file: %w", err)
	}
	_, err = f.WriteString(fileHeader)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(p.path))
	}
	if err != nil {
		return true, fmt.Errorf("create pin file %s: %w", p.path, err)
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close() // read-only
	return d.Sync()
}

// Path returns the pin file's path, "" when pins are kept in memory only.
func (p *Pins) Path() string { return p.path }

// Where describes where the pins are kept, for messages.
func (p *Pins) Where() string {
	if p.path == "" {
		return "the processor's memory (no pin file)"
	}
	return p.path
}

// Reload replaces the pins with the file's content, so that lines an
// operator deleted or changed take effect. On error the pins are unchanged.
// Without a file it does nothing.
func (p *Pins) Reload() error {
	if p.path == "" {
		return nil
	}
	f, err := os.Open(p.path)
	if err != nil {
		return fmt.Errorf("read pin file: %w", err)
	}
	defer f.Close() // read-only
	keys, dups, err := Parse(f)
	if err != nil {
		return fmt.Errorf("read pin file %s: %w", p.path, err)
	}
	p.mu.Lock()
	p.keys, p.dups = keys, dups
	p.mu.Unlock()
	return nil
}

// Duplicates describes the names the last read found pinned more than
// once; for each, the first line holds.
func (p *Pins) Duplicates() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dups
}

// Len returns the number of pinned names.
func (p *Pins) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys)
}

// Check accepts collector name with key: when name is pinned, key must be
// its key (else ErrMismatch); when it is not, addNew pins it (appending its
// line to the file and syncing it, and added is true), otherwise it is
// ErrUnknown. Any other error is the file's.
//
// A known name is decided without waiting for the fsync of another name's
// new pin: new pins are written one at a time under writeMu, the lookup
// takes mu only.
func (p *Pins) Check(name string, key []byte, addNew bool) (added bool, err error) {
	if known, err := p.lookup(name, key); known || !addNew {
		if !known && err == nil {
			err = ErrUnknown
		}
		return false, err
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	if known, err := p.lookup(name, key); known { // a racing first contact won
		return false, err
	}
	if err := p.appendLine(Line(key, name)); err != nil {
		return false, err
	}
	p.mu.Lock()
	p.keys[name] = bytes.Clone(key)
	p.mu.Unlock()
	return true, nil
}

// lookup reports whether name is pinned, and ErrMismatch if to another key.
func (p *Pins) lookup(name string, key []byte) (known bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pinned, ok := p.keys[name]
	if ok && !bytes.Equal(pinned, key) {
		return true, ErrMismatch
	}
	return ok, nil
}

// appendLine adds line to the file and syncs it. p.writeMu is held.
func (p *Pins) appendLine(line string) error {
	if p.path == "" {
		return nil
	}
	created, err := p.createdNow()
	if err != nil {
		return err
	}
	if created {
		// An operator deleted the file without a SIGHUP: write back the
		// pins in force, or a restart would forget them all.
		var all strings.Builder
		p.mu.Lock()
		for name, key := range p.keys {
			all.WriteString(Line(key, name) + "\n")
		}
		p.mu.Unlock()
		line = all.String() + line
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pin collector: %w", err)
	}
	line += "\n"
	if endsMidLine(f) { // an operator's last line has no newline
		line = "\n" + line
	}
	if st, err := f.Stat(); err == nil && st.Size()+int64(len(line)) > MaxFileBytes {
		f.Close()
		return fmt.Errorf("%w: %s would pass %d bytes; retire hosts (delete their lines, SIGHUP) or run with --collector-identity=known", ErrFull, p.path, MaxFileBytes)
	}
	_, err = f.WriteString(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pin collector in %s: %w", p.path, err)
	}
	return nil
}

// endsMidLine reports whether f is not empty and does not end in a newline.
func endsMidLine(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false
	}
	var last [1]byte
	_, err = f.ReadAt(last[:], st.Size()-1)
	return err == nil && last[0] != '\n'
}

// Line returns the pin file line for a collector: its key, one space, its
// name.
func Line(key []byte, name string) string {
	return FormatKey(key) + " " + name
}

// MaxFileBytes bounds a pin file (64 MiB: some 600,000 collectors). In
// tofu mode every holder of the token can add names, as it can add files.
const MaxFileBytes = 64 << 20

// Parse reads a pin file. Each line is blank, a comment (its first
// non-blank character is '#'), or a pin: the key as FormatKey writes it,
// exactly one space, and the collector name up to the end of the line (a
// trailing "\r" is dropped). A name pinned twice (an operator added a line
// while the processor pinned the name on first contact) keeps its first
// line, which the operator wrote first; dups describes each such name.
func Parse(r io.Reader) (keys map[string][]byte, dups []string, err error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	keys = make(map[string][]byte)
	lineOf := make(map[string]int)
	n := 0
	for line := range strings.Lines(string(b)) {
		n++
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if t := strings.TrimLeft(line, " \t"); t == "" || t[0] == '#' {
			continue
		}
		ks, name, ok := strings.Cut(line, " ")
		if !ok {
			return nil, nil, fmt.Errorf("line %d: want \"ed25519:<key> <name>\"", n)
		}
		key, err := ParseKey(ks)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := CheckName(name); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if first, dup := lineOf[name]; dup {
			if !bytes.Equal(keys[name], key) {
				dups = append(dups, fmt.Sprintf("line %d: collector %q pinned again, to another key; line %d holds", n, name, first))
			}
			continue
		}
		keys[name], lineOf[name] = key, n
	}
	return keys, dups, nil
}
