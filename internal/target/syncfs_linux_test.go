package target_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"thunder/internal/target"
)

// TestSyncfsOnlyWhereItReportsErrors: syncfs(2) stands for an fsync of
// each file only on file systems whose sync_fs reports writeback errors;
// on overlayfs (a container without a volume) it returns 0 over a lost
// writeback of the upper file system, and most FUSE file systems make it
// do nothing, so there each file is fsynced.
func TestSyncfsOnlyWhereItReportsErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		magic int64
		want  bool
	}{
		{"ext4", unix.EXT4_SUPER_MAGIC, true},
		{"xfs", unix.XFS_SUPER_MAGIC, true},
		{"btrfs", unix.BTRFS_SUPER_MAGIC, true},
		{"overlayfs", unix.OVERLAYFS_SUPER_MAGIC, false},
		{"fuse", unix.FUSE_SUPER_MAGIC, false},
		{"nfs", unix.NFS_SUPER_MAGIC, false},
	} {
		if got := target.SyncfsTrusted(c.magic); got != c.want {
			t.Errorf("%s: syncfs trusted = %v, want %v", c.name, got, c.want)
		}
	}

	// A target dir on a real overlay mount, where root may make one.
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + filepath.Join(base, "lower") + ",upperdir=" + filepath.Join(base, "upper") + ",workdir=" + filepath.Join(base, "work")
	merged := filepath.Join(base, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("SKIP the overlay mount half: cannot mount overlayfs here (needs root and overlay support): %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	d := mustOpen(t, merged)
	if target.WritesBehind(d) {
		t.Error("a target dir on overlayfs uses syncfs for commits; want each file fsynced")
	}
	mustClose(t, d)
}
