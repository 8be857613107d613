//go:build unix

package main

import (
	"fmt"

	"thunder/internal/linecheck"
)

// noChecksums is the collector flag that turns frame checksums and digests
// off (PROTOCOL §13), for this comparison only.
const noChecksums = "--frame-checksums=false"

// checksumRate is the live rate at which the collector's CPU is compared.
const checksumRate = 400_000

// runChecksums measures what frame checksums and digests cost: durable
// bulk throughput and the collector's CPU at 400k lines/s, with and
// without, alternating in the same run so both see the same box. The
// budget is 3 % of each.
func (b *bench) runChecksums() error {
	var bulkOn, bulkOff, cpuOn, cpuOff []float64
	for range b.runs {
		for _, on := range []bool{true, false} {
			var args []string
			if !on {
				args = []string{noChecksums}
			}
			br, err := b.bulkRun(args)
			if err != nil {
				return fmt.Errorf("bulk (checksums %v): %w", on, err)
			}
			lr, err := b.liveRun(linecheck.LockedAppend, checksumRate, args)
			if err != nil {
				return fmt.Errorf("live (checksums %v): %w", on, err)
			}
			if on {
				bulkOn, cpuOn = append(bulkOn, br.durable), append(cpuOn, lr.collCores/lr.achieved*1e6)
			} else {
				bulkOff, cpuOff = append(bulkOff, br.durable), append(cpuOff, lr.collCores/lr.achieved*1e6)
			}
		}
	}
	mOn, mOff := median(bulkOn), median(bulkOff)
	cOn, cOff := median(cpuOn), median(cpuOff)
	b.rep.result("checksums", kv{"bulk_MiBps_with", mOn}, kv{"bulk_MiBps_without", mOff},
		kv{"collector_cpu_us_per_kline_with", cOn * 1000}, kv{"collector_cpu_us_per_kline_without", cOff * 1000}, kv{"runs", b.runs})
	b.rep.add("checksums and digests", "bulk durable, with / without", fmt.Sprintf("%.0f / %.0f MiB/s", mOn, mOff),
		ratio(mOn, mOff), fmt.Sprintf("median of %d alternating runs; budget ≥ 0.97×", b.runs))
	b.rep.add("checksums and digests", fmt.Sprintf("collector CPU at %dk lines/s, with / without", checksumRate/1000),
		fmt.Sprintf("%.3f / %.3f core-µs per line", cOn, cOff), ratio(cOn, cOff), "per line written; budget ≤ 1.03×")
	return nil
}
