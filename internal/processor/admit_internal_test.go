package processor

import (
	"net"
	"testing"
	"time"
)

func TestPeerKey(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 4000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 4000}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 5}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5, Zone: "eth0"}, "fe80::/64"},
		{&net.UnixAddr{Name: "pipe", Net: "unix"}, "pipe"},
	}
	for _, tt := range tests {
		if got := peerKey(tt.addr); got != tt.want {
			t.Errorf("peerKey(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// The peer holding the most handshakes gives its oldest to a peer holding
// fewer; never to itself or to a peer holding as many.
func TestHandshakesVictim(t *testing.T) {
	var h handshakes
	a1, a2, b1 := &session{ip: "a"}, &session{ip: "a"}, &session{ip: "b"}
	for _, s := range []*session{a1, a2, b1} {
		h.add(s)
	}
	for _, tt := range []struct {
		peer string
		want *session
	}{{"c", a1}, {"b", a1}, {"a", nil}} {
		if got := h.victim(tt.peer); got != tt.want {
			t.Errorf("victim(%q) = %p, want %p", tt.peer, got, tt.want)
		}
	}
	if !h.remove(a1) || h.remove(a1) || h.n != 2 {
		t.Fatalf("remove(a1) twice: n = %d, want 2 and true then false", h.n)
	}
	if got := h.victim("c"); got != a2 && got != b1 { // a and b hold one each
		t.Errorf("victim(c) with a tie of 1 = %p, want a2 %p or b1 %p", got, a2, b1)
	}
	if got := h.victim("b"); got != nil {
		t.Errorf("victim(b) with a tie of 1 = %p, want nil", got)
	}
}

// A handshake that just got its slot is spared (a storm's collector not
// read yet); one past the token check longer; a freed slot goes to the
// waiting peer holding the fewest slots.
func TestHandshakesVictimBeforeAndFirst(t *testing.T) {
	now := time.Now()
	var h handshakes
	a1 := &session{ip: "a", accepted: now.Add(-time.Hour)}
	a2 := &session{ip: "a", accepted: now}
	a2.tokenOK.Store(true)
	b1 := &session{ip: "b", accepted: now}
	for _, s := range []*session{a1, a2, b1} {
		h.add(s)
	}
	if got := h.victimBefore("c", now.Add(-time.Second), now.Add(-time.Second)); got != a1 {
		t.Errorf("victimBefore(c) = %p, want the old silent a1 %p", got, a1)
	}
	h.remove(a1)
	if got := h.victimBefore("c", now.Add(-time.Second), now.Add(-time.Second)); got != nil {
		t.Errorf("victimBefore(c) among handshakes younger than the cutoff = %p, want nil", got)
	}
	if h.hogs("a") || !h.hogs("b") {
		// a holds one past the token check: it may wait; b ties a, silent.
		t.Errorf("hogs(a) = %v, hogs(b) = %v, want false, true", h.hogs("a"), h.hogs("b"))
	}
	var w handshakes
	wa := &session{ip: "a", arrived: now.Add(-time.Minute)}
	wz := &session{ip: "z", arrived: now}
	w.add(wa)
	w.add(wz)
	if got := w.first(&h); got != wz {
		t.Errorf("first = %p, want z's %p (z holds no slot, a one)", got, wz)
	}
}
