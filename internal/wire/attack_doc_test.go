package wire_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"thunder/internal/wire"
)

// TestAttackProtocolLimitsTable: PROTOCOL.md is normative ("a second
// implementation of either side can be built from it alone"), and after
// the crc32c change it gives two values for MaxFrameBytes: §2 says
// 4,194,328 (20 + 4 MiB + 4), the §6 limits table still says 4,194,324;
// §5 still says a payload's 4 MiB bound is "implied by MaxFrameBytes",
// which is no longer true (ParseData checks it, since a body of
// MaxFrameBytes without a trailer is a payload 4 bytes too long). Welcome
// also sends max_frame_bytes = 4,194,328 on connections without
// checksums, where the largest acceptable body is 4,194,324. An
// implementation built from §6, or one trusting Welcome on an unsealed
// connection, sends frames the processor refuses.
//
// Fix: update the §6 row and §5's sentence; send max_frame_bytes without
// the trailer on unsealed connections (or document it as including it).
func TestAttackProtocolLimitsTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?m)^.*`MaxFrameBytes`.*$")
	num := regexp.MustCompile(`\b4,194,3\d\d\b`)
	for _, line := range re.FindAllString(string(b), -1) {
		for _, n := range num.FindAllString(line, -1) {
			v, _ := strconv.Atoi(strings.ReplaceAll(n, ",", ""))
			if v != wire.MaxFrameBytes {
				t.Errorf("PROTOCOL.md gives MaxFrameBytes as %s, the code %d: %q", n, wire.MaxFrameBytes, line)
			}
		}
	}
	if strings.Contains(string(b), "implied by `MaxFrameBytes`") {
		t.Errorf("PROTOCOL.md §5: the 4 MiB payload bound is no longer implied by MaxFrameBytes (it includes the trailer)")
	}
}
