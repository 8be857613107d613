package processor

// Handshaking returns how many connections hold a handshake slot.
func Handshaking(p *Processor) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hs.n
}
