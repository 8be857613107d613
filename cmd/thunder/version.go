package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time: -ldflags "-X main.version=v1.2.3
// -X main.commit=0123456789ab" (make release). Without commit, the VCS
// stamp of the build is used, where the Go tool found one.
var version, commit = "dev", ""

const versionHelp = `Usage: thunder version

Prints the version of thunder, the commit it was built from and the Go
version. It takes no flags.
`

func versionString() string {
	rev := commit
	if rev == "" {
		rev = vcsRevision()
	}
	return fmt.Sprintf("thunder %s (commit %s, %s)", version, rev, runtime.Version())
}

// vcsRevision returns the first 12 digits of the commit the Go tool stamped
// into the binary, "+dirty" if the tree was modified, or "unknown".
func vcsRevision() string {
	rev, dirty := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
	}
	return rev + dirty
}
