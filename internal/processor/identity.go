package processor

import (
	"errors"
	"fmt"
	"log/slog"

	"thunder/internal/identity"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// openPins opens the pin store for mode, nil when identities are off.
func openPins(cfg Config, mode identity.Mode) (*identity.Pins, error) {
	log := cfg.Logger
	if mode == identity.ModeOff {
		log.Warn("collector identities are off (--collector-identity=off): any holder of the token can write as, move or erase any collector's streams")
		return nil, nil
	}
	path := cfg.pinFile()
	pins, err := identity.OpenPins(path)
	if err != nil {
		return nil, err
	}
	logDuplicates(log, pins)
	if path == "" {
		log.Warn("collector pins are kept in memory only (no target dir and no --known-collectors): after a restart any holder of the token can claim any collector name once; set --known-collectors=FILE",
			"mode", mode)
	} else {
		log.Info("collector pins loaded", "mode", mode, "file", path, "collectors", pins.Len())
	}
	return pins, nil
}

// logDuplicates warns of names pinned twice in the file.
func logDuplicates(log *slog.Logger, pins *identity.Pins) {
	for _, d := range pins.Duplicates() {
		log.Warn("collector pinned twice in the pin file; the first line holds, delete the other", "file", pins.Path(), "duplicate", d)
	}
}

// reloadPins rereads the pin file (SIGHUP), so that a deleted line retires
// or re-keys a host.
func (p *Processor) reloadPins() error {
	if p.pins == nil || p.pins.Path() == "" {
		return nil
	}
	if err := p.pins.Reload(); err != nil {
		return err
	}
	logDuplicates(p.log, p.pins)
	p.log.Info("collector pins reloaded", "file", p.pins.Path(), "collectors", p.pins.Len())
	return nil
}

// checkIdentityKey is the Hello check of §3: unless identities are off,
// a collector must send a well-formed key.
func (s *session) checkIdentityKey(h *wirepb.Hello) error {
	switch {
	case s.p.pins == nil:
		return nil
	case len(h.IdentityKey) == 0:
		return s.refuse(wire.CodeAuth, 0, "collector sent no identity key: upgrade it, or run the processor with --collector-identity=off")
	case len(h.IdentityKey) != identity.KeyBytes:
		return s.refuse(wire.CodeProtocol, 0, "identity key of %d bytes, want %d", len(h.IdentityKey), identity.KeyBytes)
	}
	return nil
}

// prove reads the collector's Proof of its challenge (§3) under the
// handshake deadline, verifies it and checks the name's pin.
func (s *session) prove(r *wire.Reader, h *wirepb.Hello, challenge []byte) error {
	f, err := r.Next()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if f.Type != wire.TypeProof {
		return s.refuse(wire.CodeProtocol, 0, "expected proof, got %s", f.Type)
	}
	var pf wirepb.Proof
	if err := wire.Decode(f, &pf); err != nil {
		return s.refuse(wire.CodeProtocol, 0, "%v", err)
	}
	binding, err := identity.Binding(s.conn)
	if err != nil {
		return s.refuse(wire.CodeAuth, 0, "%v", err)
	}
	if !identity.Verify(h.IdentityKey, challenge, binding, h.Collector, pf.Signature) {
		return s.refuse(wire.CodeAuth, 0, "identity proof does not verify for collector %q (a proof made on another connection, e.g. relayed, never does)", h.Collector)
	}
	return s.checkPin(h.Collector, h.IdentityKey)
}

// checkPin accepts a proven key for name, or refuses it (§12).
func (s *session) checkPin(name string, key []byte) error {
	pins := s.p.pins
	added, err := pins.Check(name, key, s.p.mode == identity.ModeTOFU)
	switch {
	case err == nil:
		if added {
			s.log.Info("collector pinned", "collector", name, "key", identity.FormatKey(key), "file", pins.Where())
		}
		return nil
	case errors.Is(err, identity.ErrMismatch):
		where := pins.Where()
		// Logged whatever the connection log budget: a flood of other
		// refusals must not hide that a name is claimed by another key.
		s.p.log.Error("collector refused: its name is pinned to another key", "collector", name, "peer", s.conn.RemoteAddr().String(), "key", identity.FormatKey(key), "file", where)
		if pins.Path() == "" {
			return s.refuse(wire.CodeAuth, 0, "collector %q is pinned to another key in %s: if this host was reinstalled or re-keyed, restart the processor (or give it --known-collectors=FILE)", name, where)
		}
		return s.refuse(wire.CodeAuth, 0, "collector %q is pinned to another key in %s: if this host was reinstalled or re-keyed, delete its line from %s and send SIGHUP to the processor", name, where, where)
	case errors.Is(err, identity.ErrUnknown):
		s.logAt(slog.LevelWarn, "unknown collector refused; to accept it, add this line to the pin file and send SIGHUP",
			"collector", name, "file", pins.Where(), "line", identity.Line(key, name))
		return s.refuse(wire.CodeAuth, 0, "collector %q is not in the processor's pin file %s (--collector-identity=known)", name, pins.Where())
	}
	return s.refuse(wire.CodeStorage, 0, "cannot record collector %q's key: %v", name, err)
}
