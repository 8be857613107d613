package processor

import (
	"crypto/tls"
	"net"
	"net/netip"
	"slices"
	"time"

	"thunder/internal/wire"
)

// Admission (PROTOCOL.md §6, Connections). A connection is refused before
// a byte is read when Config.MaxConns are open, or MaxConnsPerPeer from its
// peer. When MaxHandshakes connections are in their handshake, a new one
// from a peer that holds fewer of them than the peer holding the most
// takes the place of that peer's oldest handshake, which is closed; a new
// one from that peer itself is refused. So one peer silently holding every
// handshake slot cannot lock the others out: it only ever loses its own
// slots, and a fleet of collectors behind one address is served as before.

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
	if v := h.pick(peer, func(s *session) bool { return !s.tokenOK.Load() }); v != nil {
		return v
	}
	return h.pick(peer, func(*session) bool { return true })
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

// admit registers a new connection, or closes it when a limit is reached.
func (p *Processor) admit(conn net.Conn) (*session, bool) {
	peer := peerKey(conn.RemoteAddr())
	p.mu.Lock()
	var why string
	var victim *session
	switch {
	case len(p.sessions) >= p.cfg.MaxConns:
		why = "too many connections"
	case p.cfg.MaxConnsPerPeer > 0 && p.peers[peer] >= p.cfg.MaxConnsPerPeer:
		why = "too many connections from this peer"
	case p.hs.n >= p.cfg.MaxHandshakes:
		if victim = p.hs.victim(peer); victim == nil {
			why = "too many connections in their handshake"
		} else {
			p.hs.remove(victim)
		}
	}
	if why != "" {
		if time.Since(p.limitLogged) > 10*time.Second {
			p.limitLogged = time.Now()
			p.log.Warn("connection refused", "peer", conn.RemoteAddr().String(), "why", why, "conns", len(p.sessions), "handshaking", p.hs.n)
		}
		p.mu.Unlock()
		_ = conn.Close() // refused before any byte was read
		p.m.refused(wire.CodeLimit)
		return nil, false
	}
	s := newSession(p, conn)
	s.ip = peer
	p.sessions[s] = struct{}{}
	p.peers[peer]++
	p.hs.add(s)
	p.mu.Unlock()
	if victim != nil {
		p.evict(victim, peer)
	}
	return s, true
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

// handshook is called once a session's handshake ended, either way.
func (p *Processor) handshook(s *session) {
	p.mu.Lock()
	p.hs.remove(s) // false if it was evicted
	p.mu.Unlock()
}
