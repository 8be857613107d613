package main

import "errors"

// unsupported is a command that does not run on this system: exit status
// 2, as for a command line nothing can be done with.
type unsupported struct{ error }

// refusal returns why cmd (as run names it) does not run on goos
// (runtime.GOOS), or nil. On Windows the collector cannot keep its
// contract: a file a writer holds open cannot be renamed or deleted unless
// the writer opened it with FILE_SHARE_DELETE, which few do, so rotation
// by rename fails under the writer and a rotated file held open cannot be
// told from one deleted; and there is no flock(2) to see whether a writer
// still appends (README, Platforms). The demo runs a collector.
func refusal(goos, cmd string) error {
	if goos != "windows" {
		return nil
	}
	switch cmd {
	case "logs-collector", "collector":
		return unsupported{errors.New("thunder logs-collector does not run on Windows: the collector's rotation contract relies on renaming files that writers hold open and on flock(2); see README, Platforms")}
	case "demo":
		return unsupported{errors.New("thunder demo does not run on Windows: it runs a collector, which does not (see README, Platforms)")}
	}
	return nil
}

// exitStatus is the exit status of a run that returned err: 2 for a
// command line mistake, a verify that could not check, or a command this
// system does not run; 1 for any other failure.
func exitStatus(err error) int {
	var ue usageError
	var cc cannotCheck
	var un unsupported
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue), errors.As(err, &cc), errors.As(err, &un):
		return 2
	default:
		return 1
	}
}
