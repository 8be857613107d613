package collector

import "io/fs"

// The collector does not run on Windows (cmd/thunder refuses it: README,
// "Platforms"); these let the package build, for the status types the
// processor binary's status and top commands read.

const openNoFollow = 0

func statIno(fs.FileInfo) devIno { return devIno{} }

func linkCount(fs.FileInfo) uint64 { return 1 }
