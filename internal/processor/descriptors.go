package processor

import (
	"context"
	"net"
	"time"
)

// Descriptors. Every connection holds one, and so do the target files
// (Config.MaxOpenFiles), the state store, the pin file, Kafka's sockets and
// the admin endpoint's connections. A process out of them fails whatever
// needs one next: an accept (which net/http and accept retry), but also a
// target file's open, which ends its collector's session with storage. So
// the processor stops accepting while its connections would leave fewer
// than that reserve free, rather than taking the descriptors the rest
// needs: collectors past it wait in the kernel's accept backlog (and their
// SYNs past that are retried by their kernels), and get in as others
// leave (the one accepted meanwhile is held, admitWithin). Throughput
// degrades; no connection is dropped.

// fdReserve is what the processor keeps free beyond its target files: the
// state store, listeners, the pin file, Kafka's brokers, the admin
// endpoint's clients, the runtime's own.
const fdReserve = 256

// descriptorBudget returns how many target files may be open and how many
// connections the descriptor limit leaves room for (0: no limit to
// respect): fdReserve, then maxOpenFiles target files, and the rest for
// connections. A limit that does not leave the connections half of what is
// past the reserve (ulimit -n 4096 with the default 4,096 target files)
// gives the target files that half instead: else one connection, or a few,
// would be served at a time. maxOpenFiles is 0 without a target dir.
func descriptorBudget(maxOpenFiles int) (files, conns int) {
	limit, ok := descriptorLimit()
	return budgetWithin(limit, ok, maxOpenFiles)
}

// budgetWithin is descriptorBudget under limit (!ok: none).
func budgetWithin(limit uint64, ok bool, maxOpenFiles int) (files, conns int) {
	if !ok || limit > 1<<40 { // RLIM_INFINITY too
		return maxOpenFiles, 0
	}
	free := int(limit) - fdReserve
	if files = min(maxOpenFiles, free/2); maxOpenFiles > 0 {
		files = max(files, minOpenFiles)
	}
	return files, max(free-files, 1)
}

// budgetDescriptors sets the connection budget from the descriptor limit,
// lowering MaxOpenFiles where the limit does not hold it (descriptorBudget).
func (p *Processor) budgetDescriptors() {
	cfg := p.cfg
	targetFiles := cfg.MaxOpenFiles
	if cfg.TargetDir == "" {
		targetFiles = 0 // Kafka only
	}
	var files int
	files, p.fdBudget = descriptorBudget(targetFiles)
	if files < targetFiles {
		p.log.Warn("the descriptor limit does not hold max open files and the connections; fewer target files are kept open (raise ulimit -n)",
			"max_open_files", cfg.MaxOpenFiles, "kept_open", files, "conns", p.fdBudget, "reserve", fdReserve)
		p.cfg.MaxOpenFiles = files
	}
	if p.fdBudget > 0 && p.fdBudget < cfg.MaxConns {
		p.log.Warn("the descriptor limit leaves room for fewer connections than max conns; more wait to be accepted (raise ulimit -n)",
			"conns", p.fdBudget, "max_conns", cfg.MaxConns, "max_open_files", p.cfg.MaxOpenFiles, "reserve", fdReserve)
	}
}

// minOpenFiles is the least --max-open-files (Validate).
const minOpenFiles = 16

// admitWithin admits conn, waiting while the connections fill the
// descriptor budget and none of them waits for a handshake slot: conn is
// then the one connection held past the budget, the others wait in the
// backlog. With some waiting, conn takes the place of one of a peer
// holding more of them, or is refused, as at MaxConns (admitLocked): a
// peer filling the budget with silent sockets cannot keep the others in
// the backlog. Checked again when a session ends, and at each rebalance.
func (p *Processor) admitWithin(ctx context.Context, conn net.Conn) (*session, bool) {
	for paused := false; ; paused = true {
		s, ok, full := p.admit(conn)
		if !full {
			return s, ok
		}
		if !paused {
			p.m.acceptPaused()
		}
		select {
		case <-p.left:
		case <-time.After(rebalanceEvery):
		case <-ctx.Done():
			_ = conn.Close()
			return nil, false
		}
	}
}

// sessionLeft wakes an accept waiting for descriptors.
func (p *Processor) sessionLeft() {
	select {
	case p.left <- struct{}{}:
	default:
	}
}
