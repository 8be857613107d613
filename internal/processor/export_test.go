package processor

// Handshaking returns how many connections hold a handshake slot.
func Handshaking(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hs.n
}

// QueuedBytes returns the most bytes of frames any session has queued for
// its writer.
func QueuedBytes(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	most := 0
	for s := range p.sessions {
		s.mu.Lock()
		n := len(s.out)
		if s.pong {
			n += 5 // wire.HeaderBytes
		}
		s.mu.Unlock()
		most = max(most, n)
	}
	return most
}
