//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// peerResult is a peer's bulk median from the shared kit.
type peerResult struct {
	name             string
	mibps, cpuPerGiB float64
	rssSend, rssRecv float64
	status           string
}

// peerTimeout bounds one peer script.
const peerTimeout = 45 * time.Minute

// runPeers runs the shared kit's rsyslog and syslog-ng scripts in bulk mode
// with the size of thunder's bulk file and one repetition, and puts their
// medians beside thunder's.
func (b *bench) runPeers() error {
	kit := os.Getenv("THUNDER_BENCH_KIT")
	if kit == "" {
		kit = "/work/shared/bench"
	}
	if _, err := os.Stat(filepath.Join(kit, "peer-common.sh")); err != nil {
		b.logf("peers skipped: no benchmark kit at %s ($THUNDER_BENCH_KIT)", kit)
		b.rep.add("peers", "skipped", "no kit at "+kit, "", "set THUNDER_BENCH_KIT to the shared bench dir")
		return nil
	}
	var peers []peerResult
	for _, script := range []string{"peer-rsyslog.sh", "peer-syslog-ng.sh"} {
		res, err := b.peerScript(filepath.Join(kit, script))
		if err != nil {
			b.logf("%s: %v", script, err)
			b.rep.add("peers", script, "FAILED", "", err.Error())
			continue
		}
		peers = append(peers, res...)
	}
	th, ok := b.bulk["plain"]
	best := peerResult{}
	for _, p := range peers {
		if p.mibps > best.mibps {
			best = p
		}
		b.rep.add("peers (bulk, kit)", p.name, fmt.Sprintf("%.0f MiB/s", p.mibps), ratio(p.mibps, b.ceil.pipe),
			fmt.Sprintf("CPU %.1f s/GiB; RSS send/recv %.0f/%.0f MiB; status %s; no fsync", p.cpuPerGiB, p.rssSend, p.rssRecv, p.status))
	}
	if ok {
		b.rep.add("peers (bulk, kit)", "thunder (durable, fsync)", fmt.Sprintf("%.0f MiB/s", th.durable), ratio(th.durable, b.ceil.pipe),
			fmt.Sprintf("CPU %.1f s/GiB; RSS coll/proc %.0f/%.0f MiB", th.collCPU+th.procCPU, th.collMiB, th.procMiB))
		if best.mibps > 0 {
			b.rep.add("peers (bulk, kit)", "thunder ÷ best peer ("+best.name+")", fmt.Sprintf("%.2f×", th.durable/best.mibps), "", "")
			b.rep.result("peers", kv{"best", best.name}, kv{"best_MiBps", best.mibps}, kv{"thunder_MiBps", th.durable},
				kv{"thunder_over_best", th.durable / best.mibps})
		}
	}
	b.peers = peers
	return nil
}

// peerScript runs one kit script with MODES=bulk, MB = thunder's bulk size
// and RUNS=1, and parses its "stat=median" RESULT lines.
func (b *bench) peerScript(path string) ([]peerResult, error) {
	ctx, cancel := context.WithTimeout(b.ctx, peerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Env = append(os.Environ(), "MODES=bulk", "RUNS=1", "BENCH_WORK="+b.work,
		"MB="+strconv.FormatInt(b.corpusBytes/mib, 10), fmt.Sprintf("QUIET_MAX=%d", int(b.quietMax.Seconds())))
	cmd.Stderr = os.Stderr
	// The script stops its own daemons on TERM; kill only its process group
	// if it overruns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	res := parsePeerResults(io.TeeReader(out, os.Stderr))
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return res, nil
}

func parsePeerResults(r io.Reader) []peerResult {
	var res []peerResult
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "RESULT peer=") || !strings.Contains(l, " mode=bulk ") || !strings.Contains(l, " stat=median") {
			continue
		}
		f := map[string]string{}
		for _, w := range strings.Fields(l)[1:] {
			if k, v, ok := strings.Cut(w, "="); ok {
				f[k] = v
			}
		}
		num := func(k string) float64 { v, _ := strconv.ParseFloat(f[k], 64); return v }
		res = append(res, peerResult{name: f["peer"], mibps: num("MiBps"), cpuPerGiB: num("cpu_s_per_GiB"),
			rssSend: num("rss_send_mb"), rssRecv: num("rss_recv_mb"), status: f["status"]})
	}
	return res
}
