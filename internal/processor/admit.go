package processor

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"thunder/internal/wire"
)

// Admission (PROTOCOL.md §6, Connections). A connection is refused before
// a byte is read when MaxConnsPerPeer are open from its peer, or
// Config.MaxConns in all (unless it takes the place of a waiting one, as
// below). When MaxHandshakes connections are in their handshake, a new one
// waits for a slot (awaitSlot, at most the handshake timeout), so that a
// reconnect storm gets in without refusals; slots go to the waiting
// connection of the peer holding the fewest. A new or waiting connection
// from a peer that holds fewer slots than the peer holding the most takes
// the place of that peer's oldest handshake once it has been silent for a
// while (slotVictim), which is closed; a new one from a peer holding the
// most slots, none of them past the token check, is refused. So one peer
// silently holding every handshake slot cannot lock the others out: it only
// ever loses its own slots, and a fleet of collectors behind one address
// is served as before.

// peerKey is what connections are counted by: the IPv4 address, or the /64
// prefix of an IPv6 address (one host usually holds a whole /64).
func peerKey(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String() // not IP (a test's pipe): one peer per address
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// handshakes are the connections in their handshake, by peer, oldest
// first. Guarded by Processor.mu.
type handshakes struct {
	n      int
	byPeer map[string][]*session
}

func (h *handshakes) add(s *session) {
	if h.byPeer == nil {
		h.byPeer = make(map[string][]*session)
	}
	h.byPeer[s.ip] = append(h.byPeer[s.ip], s)
	h.n++
}

// remove reports whether s was in its handshake, and forgets it.
func (h *handshakes) remove(s *session) bool {
	list := h.byPeer[s.ip]
	i := slices.Index(list, s)
	if i < 0 {
		return false
	}
	if list = slices.Delete(list, i, i+1); len(list) == 0 {
		delete(h.byPeer, s.ip)
	} else {
		h.byPeer[s.ip] = list
	}
	h.n--
	return true
}

// victim returns the handshake a new one from peer may take the slot of,
// or nil. Handshakes whose Hello passed the token check are spared while
// any other is left: a peer without the token (or many of them, from many
// addresses) cannot push out one that has it, however fast it churns.
// Among the candidates it takes the oldest of the peer holding the most,
// if peer holds fewer than that one.
func (h *handshakes) victim(peer string) *session {
	return h.victimBefore(peer, time.Time{}, time.Time{})
}

// victimBefore is victim among the handshakes that got their slot before
// cutoff, or before tokenCutoff for those past the token check (zero: all):
// one that just got it has had no time to send its Hello or Proof, and
// evicting it only churns (a reconnect storm).
func (h *handshakes) victimBefore(peer string, cutoff, tokenCutoff time.Time) *session {
	before := func(s *session, t time.Time) bool { return t.IsZero() || s.accepted.Before(t) }
	if v := h.pick(peer, func(s *session) bool { return !s.tokenOK.Load() && before(s, cutoff) }); v != nil {
		return v
	}
	return h.pick(peer, func(s *session) bool { return before(s, cutoff) && (!s.tokenOK.Load() || before(s, tokenCutoff)) })
}

// hogs reports whether peer holds the most handshakes (at least one) and
// none of them passed the token check: a new connection of its own is
// refused rather than kept waiting, as a peer filling every slot with
// silent sockets gains nothing from more of them.
func (h *handshakes) hogs(peer string) bool {
	mine := h.byPeer[peer]
	if len(mine) == 0 || slices.ContainsFunc(mine, func(s *session) bool { return s.tokenOK.Load() }) {
		return false
	}
	for _, list := range h.byPeer {
		if len(list) > len(mine) {
			return false
		}
	}
	return true
}

// first returns the waiting connection a freed slot goes to: the oldest
// of the peer holding the fewest handshakes in slots, so that no peer's
// queue of waiting connections holds up the others'.
func (h *handshakes) first(slots *handshakes) *session {
	var best *session
	bestN := 0
	for peer, list := range h.byPeer {
		n := len(slots.byPeer[peer])
		if best == nil || n < bestN || n == bestN && list[0].arrived.Before(best.arrived) {
			best, bestN = list[0], n
		}
	}
	return best
}

func (h *handshakes) pick(peer string, candidate func(*session) bool) *session {
	count := func(list []*session) (n int, oldest *session) {
		for _, s := range list {
			if candidate(s) {
				if n++; oldest == nil {
					oldest = s
				}
			}
		}
		return n, oldest
	}
	var top *session
	topN := 0
	for _, list := range h.byPeer {
		if n, oldest := count(list); n > topN || n == topN && n > 0 && oldest.accepted.Before(top.accepted) {
			top, topN = oldest, n
		}
	}
	if mine, _ := count(h.byPeer[peer]); top == nil || mine >= topN {
		return nil
	}
	return top
}

// maxEvictAfter bounds how long a silent handshake holds its slot before a
// connection of a peer holding fewer may take it (slotVictim): half the
// handshake timeout, at most this. A collector sends its Hello at once,
// but in a reconnect storm a loaded processor (or collector, or a TLS
// handshake over a slow link) takes seconds to get it read, and evicting
// it then only churns.
const maxEvictAfter = 5 * time.Second

// rebalanceEvery is how often waiting connections look for a slot to take.
const rebalanceEvery = 250 * time.Millisecond

// admit registers a new connection, or closes it when a limit is reached.
// Past MaxHandshakes it waits for a slot (awaitSlot) unless it may take
// one (victimBefore) or its peer hogs them (hogs). With the descriptor
// budget full it does neither and reports full, leaving conn open.
func (p *Processor) admit(conn net.Conn) (s *session, ok, full bool) {
	peer := peerKey(conn.RemoteAddr())
	s = newSession(p, conn)
	s.ip = peer
	p.mu.Lock()
	why, victims := p.admitLocked(s)
	if why == whyNoDescriptors {
		p.mu.Unlock()
		return nil, false, true
	}
	if why != "" {
		if time.Since(p.limitLogged) > 10*time.Second {
			p.limitLogged = time.Now()
			p.log.Warn("connection refused", "peer", conn.RemoteAddr().String(), "why", why, "conns", len(p.sessions), "handshaking", p.hs.n, "waiting", p.waiting.n)
		}
		p.mu.Unlock()
		_ = conn.Close() // refused before any byte was read
		p.m.refused(wire.CodeLimit)
		return nil, false, false
	}
	p.sessions[s] = struct{}{}
	p.peers[peer]++
	p.mu.Unlock()
	for _, v := range victims {
		p.evict(v, peer)
	}
	return s, true, false
}

// whyNoDescriptors is admitLocked's answer for a connection that must wait
// for descriptors (admitWithin).
const whyNoDescriptors = "descriptors"

// admitLocked gives s a handshake slot or a place among the waiting, and
// returns the connections it takes them from; or why it is refused.
func (p *Processor) admitLocked(s *session) (why string, victims []*session) {
	if p.cfg.MaxConnsPerPeer > 0 && p.peers[s.ip] >= p.cfg.MaxConnsPerPeer {
		return "too many connections from this peer", nil
	}
	if atMax, noFDs := len(p.sessions) >= p.cfg.MaxConns, p.fdBudget > 0 && len(p.sessions) >= p.fdBudget; atMax || noFDs {
		// Waiting connections give way to a peer holding fewer of them,
		// as handshakes do: many silent ones cannot fill MaxConns, nor
		// the descriptor budget.
		// With none waiting, a connection past the descriptor budget
		// waits to be admitted (admitWithin).
		v := p.waiting.victim(s.ip)
		switch {
		case v == nil && (atMax || p.waiting.n > 0):
			return "too many connections", nil
		case v == nil:
			return whyNoDescriptors, nil
		}
		p.waiting.remove(v)
		victims = append(victims, v)
	}
	switch {
	case p.hs.n < p.cfg.MaxHandshakes:
		p.grantLocked(s)
	case p.hs.hogs(s.ip):
		return "too many connections in their handshake", victims
	default:
		if v := p.slotVictim(s.ip); v != nil {
			p.hs.remove(v)
			p.grantLocked(s)
			return "", append(victims, v)
		}
		p.waiting.add(s)
	}
	return "", victims
}

// slotVictim is the handshake a connection from peer may take the slot
// of now: one silent for maxEvictAfter (or half the handshake timeout if
// shorter), or past the token check and waiting for its Proof for half the
// handshake timeout. p.mu is held.
func (p *Processor) slotVictim(peer string) *session {
	now, half := time.Now(), p.cfg.HandshakeTimeout/2
	return p.hs.victimBefore(peer, now.Add(-min(half, maxEvictAfter)), now.Add(-half))
}

// grantLocked gives s a handshake slot and wakes it if it waits.
func (p *Processor) grantLocked(s *session) {
	s.accepted = time.Now()
	p.hs.add(s)
	close(s.granted)
}

// awaitSlot waits until the session has a handshake slot, at most the
// handshake timeout: a collector in a reconnect storm waits its turn
// rather than being refused and retrying.
func (s *session) awaitSlot(ctx context.Context) error {
	select {
	case <-s.granted:
		return nil
	default:
	}
	t := time.NewTimer(s.p.cfg.HandshakeTimeout)
	defer t.Stop()
	var err error
	select {
	case <-s.granted:
		return nil
	case <-t.C:
		err = fmt.Errorf("waited %v for a handshake slot: %w", s.p.cfg.HandshakeTimeout, os.ErrDeadlineExceeded)
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if !s.p.waiting.remove(s) {
		return nil // granted, or evicted (its socket is closed), meanwhile
	}
	return err
}

// rebalance periodically gives the slot of a handshake silent too long
// (slotVictim) to a waiting connection of a peer holding fewer.
func (p *Processor) rebalance(ctx context.Context) {
	t := time.NewTicker(rebalanceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		var victims []*session
		for w := p.waiting.first(&p.hs); w != nil; w = p.waiting.first(&p.hs) {
			v := p.slotVictim(w.ip)
			if v == nil {
				break
			}
			p.hs.remove(v)
			p.waiting.remove(w)
			p.grantLocked(w)
			victims = append(victims, v)
		}
		p.mu.Unlock()
		for _, v := range victims {
			p.evict(v, v.ip)
		}
	}
}

// evict ends a connection whose handshake slot was given to one from
// another peer. It closes the socket under any TLS layer: nothing is owed
// to a peer that has not authenticated, and a close_notify could block.
func (p *Processor) evict(s *session, by string) {
	conn := s.conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	_ = conn.Close() // its reader fails and ends the session
	select {
	case <-s.granted:
	default:
		close(s.granted) // it was waiting, and is out of the queue: only we close it
	}
	p.m.evictedHandshake()
	p.mu.Lock()
	p.evictions++
	log := time.Since(p.evictLogged) > 10*time.Second
	n := p.evictions
	if log {
		p.evictLogged, p.evictions = time.Now(), 0
	}
	p.mu.Unlock()
	if log {
		p.log.Warn("handshake evicted for another peer's", "peer", s.conn.RemoteAddr().String(), "by", by, "evictions", n)
	}
}

// handshook is called once a session's handshake ended, either way: its
// slot goes to the first waiting connection.
func (p *Processor) handshook(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hs.remove(s) { // evicted
		return
	}
	if w := p.waiting.first(&p.hs); w != nil {
		p.waiting.remove(w)
		p.grantLocked(w)
	}
}
