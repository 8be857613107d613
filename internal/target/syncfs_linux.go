package target

import "golang.org/x/sys/unix"

// syncfs makes the whole file system of the descriptor durable with one
// syncfs(2) (a variable for a test that acts in the middle of one).
var syncfs = unix.Syncfs

// syncfsReportsErrors reports whether syncfs(2) of the file system of fd
// returns its writeback errors: before Linux 5.8 it always returned 0, and
// a commit must not take that for durability. Nor on every file system
// since: overlayfs syncs its upper file system without checking that one's
// errors, most FUSE file systems make syncfs do nothing. So only those
// known to report them use it; elsewhere each file is fsynced.
func syncfsReportsErrors(fd int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	major, minor, ok := kernelVersion(unix.ByteSliceToString(u.Release[:]))
	if !ok || major < 5 || major == 5 && minor < 8 {
		return false
	}
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && syncfsTrusted(int64(st.Type))
}

// syncfsTrusted reports whether the file system of this statfs f_type has
// a sync_fs that reports writeback errors through the superblock: ext2/3/4,
// xfs, btrfs, f2fs; tmpfs, which has no writeback to fail.
func syncfsTrusted(fsType int64) bool {
	switch fsType {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	}
	return false
}
