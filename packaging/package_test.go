//go:build unix

package packaging_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// Where the package puts things (nfpm.yaml, scripts/).
const (
	bin       = "/usr/bin/thunder"
	confDir   = "/etc/thunder"
	collConf  = "/etc/thunder/collector.toml"
	procConf  = "/etc/thunder/processor.toml"
	stateDir  = "/var/lib/thunder"
	logDir    = "/var/log/thunder"
	unitsDir  = "/usr/lib/systemd/system"
	copyright = "/usr/share/doc/thunder/copyright"
	pkgName   = "thunder"
	firstVer  = "v0.0.1"
	secondVer = "v0.0.2"
)

// build runs release.sh for this machine's architecture, packages only,
// and returns the directory holding the .deb and .rpm of version. With
// archives it also builds those, and the Windows one.
func build(t *testing.T, version string, archives bool) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), version)
	args := []string{version, out, "linux/" + runtime.GOARCH}
	env := "PACKAGES_ONLY=1"
	if archives {
		args, env = append(args, "windows/amd64"), "PACKAGES_ONLY="
	}
	cmd := exec.Command("./release.sh", args...)
	cmd.Env = append(os.Environ(), env)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh %s: %v\n%s", version, err, b)
	}
	return out
}

func only(t *testing.T, dir, glob string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, glob))
	if err != nil || len(m) != 1 {
		t.Fatalf("%s in %s: %v, %v; want one file", glob, dir, m, err)
	}
	return m[0]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// machine is what the test may change and must put back.
type machine struct{ user, group bool }

// mustBeClean skips unless this machine can take the package and be put
// back as it was: root, dpkg, and no thunder installed by hand or package.
func mustBeClean(t *testing.T) machine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("installs a .deb with dpkg: needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("installs a .deb: no dpkg on this machine")
	}
	if err := exec.Command("dpkg-query", "-W", pkgName).Run(); err == nil {
		t.Skipf("package %s is installed (or its configs are): not touching it", pkgName)
	}
	for _, p := range []string{bin, confDir, stateDir, logDir, filepath.Join(unitsDir, "thunder-collector.service")} {
		if exists(p) {
			t.Skipf("%s exists: thunder is installed by hand here; not touching it", p)
		}
	}
	_, uerr := user.Lookup(pkgName)
	_, gerr := user.LookupGroup(pkgName)
	return machine{user: uerr == nil, group: gerr == nil}
}

// restore purges the package and removes what it leaves by design (the
// user, and the state and log dirs if the test made them non-empty).
func (m machine) restore(t *testing.T) {
	_ = exec.Command("dpkg", "--purge", pkgName).Run() // not installed: nothing to do
	for _, d := range []string{stateDir, logDir, confDir} {
		_ = os.RemoveAll(d) // absent before the test (mustBeClean)
	}
	if !m.user {
		if b, err := exec.Command("userdel", pkgName).CombinedOutput(); err != nil && !strings.Contains(string(b), "does not exist") {
			t.Errorf("userdel %s: %v\n%s", pkgName, err, b)
		}
	}
	if _, err := user.LookupGroup(pkgName); err == nil && !m.group {
		if b, err := exec.Command("groupdel", pkgName).CombinedOutput(); err != nil {
			t.Errorf("groupdel %s: %v\n%s", pkgName, err, b)
		}
	}
}

// TestPackages builds the packages of two versions once and checks them:
// the archives by their entries and SHA256SUMS, the .rpm by its header
// (rpm is not this machine's package manager), the .deb by installing,
// upgrading, removing and purging it.
func TestPackages(t *testing.T) {
	first := build(t, firstVer, true)
	t.Run("archives", func(t *testing.T) { testArchives(t, first) })
	t.Run("rpm", func(t *testing.T) { testRPM(t, only(t, first, "*.rpm")) })
	t.Run("deb", func(t *testing.T) { testDeb(t, only(t, first, "*.deb")) })
}

// wantRPM is every file of the .rpm: path, mode, owner, flags (cn: config,
// noreplace).
const wantRPM = `/etc/thunder drwxr-x--- root:thunder 
/etc/thunder/collector.toml -rw-r----- root:thunder cn
/etc/thunder/processor.toml -rw-r----- root:thunder cn
/usr/bin/thunder -rwxr-xr-x root:root 
/usr/lib/systemd/system/thunder-collector.service -rw-r--r-- root:root 
/usr/lib/systemd/system/thunder-processor.service -rw-r--r-- root:root 
/usr/share/doc/thunder/README.md -rw-r--r-- root:root 
/usr/share/doc/thunder/copyright -rw-r--r-- root:root 
`

func testRPM(t *testing.T, rpm string) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("no rpm here to read the .rpm (apt-get install rpm; .ci/run installs it as root)")
	}
	if got := run(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{LICENSE}", rpm); got != "thunder "+strings.TrimPrefix(firstVer, "v")+" Apache-2.0" {
		t.Errorf("rpm name, version and licence = %q, want thunder %s Apache-2.0", got, firstVer)
	}
	if got := run(t, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]", rpm); got != wantRPM {
		t.Errorf("rpm files:\n%s\nwant:\n%s", got, wantRPM)
	}
	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, want := range []string{"preinstall scriptlet", "useradd --system", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm scripts lack %q:\n%s", want, scripts)
		}
	}
}

// testDeb installs the .deb, upgrades it over an edited config, removes and
// purges it, checking each step against README ("Install from the
// packages", "Upgrade", "Removal"), and leaves the machine as it was.
func testDeb(t *testing.T, deb string) {
	m := mustBeClean(t)
	second := build(t, secondVer, false)
	t.Cleanup(func() { m.restore(t) })

	run(t, "dpkg", "-i", deb)
	checkInstalled(t, firstVer)
	const edit = "\n# edited by TestDeb\n"
	f, err := os.OpenFile(collConf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(edit); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	run(t, "dpkg", "--force-confdef", "--force-confold", "-i", only(t, second, "*.deb"))
	checkInstalled(t, secondVer)
	mustHold(t, collConf, edit, "after the upgrade")

	run(t, "dpkg", "--remove", pkgName)
	for _, p := range []string{bin, filepath.Join(unitsDir, "thunder-collector.service"), copyright} {
		if exists(p) {
			t.Errorf("%s still there after dpkg --remove", p)
		}
	}
	mustHold(t, collConf, edit, "after dpkg --remove")
	if !exists(procConf) {
		t.Errorf("%s gone after dpkg --remove; conffiles stay until purge", procConf)
	}

	run(t, "dpkg", "--purge", pkgName)
	for _, p := range []string{collConf, procConf, confDir, stateDir, logDir} {
		if exists(p) {
			t.Errorf("%s still there after dpkg --purge", p)
		}
	}
	if _, err := user.Lookup(pkgName); err != nil {
		t.Errorf("user %s gone after purge: %v; the package keeps it (README, Removal)", pkgName, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHold(t *testing.T, path, want, when string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.Contains(b, []byte(want)) {
		t.Errorf("%s %s: %v; want the edit %q kept", path, when, err, want)
	}
}

// checkInstalled checks what README promises an install leaves: the files
// with their owners and modes, the system user, the version, nothing
// running.
func checkInstalled(t *testing.T, version string) {
	t.Helper()
	u, err := user.Lookup(pkgName)
	if err != nil {
		t.Fatalf("no user %s after install: %v", pkgName, err)
	}
	g, err := user.LookupGroup(pkgName)
	if err != nil {
		t.Fatalf("no group %s after install: %v", pkgName, err)
	}
	if passwd := run(t, "getent", "passwd", pkgName); !strings.HasSuffix(strings.TrimSpace(passwd), ":/usr/sbin/nologin") {
		t.Errorf("passwd entry %q: want a nologin shell", passwd)
	}
	for _, c := range []struct {
		path      string
		mode      fs.FileMode
		uid, gid  string
		isDirWant bool
	}{
		{bin, 0o755, "0", "0", false},
		{filepath.Join(unitsDir, "thunder-collector.service"), 0o644, "0", "0", false},
		{filepath.Join(unitsDir, "thunder-processor.service"), 0o644, "0", "0", false},
		{confDir, 0o750, "0", g.Gid, true},
		{collConf, 0o640, "0", g.Gid, false},
		{procConf, 0o640, "0", g.Gid, false},
		{copyright, 0o644, "0", "0", false},
		{stateDir, 0o750, u.Uid, g.Gid, true},
		{logDir, 0o750, u.Uid, g.Gid, true},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Errorf("after install: %v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		got := fmt.Sprintf("%v %d:%d dir=%v", fi.Mode().Perm(), st.Uid, st.Gid, fi.IsDir())
		want := fmt.Sprintf("%v %s:%s dir=%v", c.mode, c.uid, c.gid, c.isDirWant)
		if got != want {
			t.Errorf("%s: %s, want %s", c.path, got, want)
		}
	}
	if b, err := os.ReadFile(copyright); err != nil || !bytes.Equal(b, mustRead(t, "../LICENSE")) {
		t.Errorf("%s: %v; want the project's LICENSE (Apache-2.0)", copyright, err)
	}
	out := run(t, bin, "version")
	if !strings.HasPrefix(out, "thunder "+version+" (commit ") || strings.Contains(out, "commit unknown") {
		t.Errorf("thunder version = %q, want %s and a commit", out, version)
	}
	if got := run(t, "dpkg-query", "-W", "-f=${Version}", pkgName); got != strings.TrimPrefix(version, "v") {
		t.Errorf("dpkg-query version = %q, want %s", got, version)
	}
	if pids := running(t); len(pids) > 0 {
		t.Errorf("processes of %s running after install: %v; the package starts nothing", bin, pids)
	}
}

// running returns the processes whose executable is the installed binary.
func running(t *testing.T) []string {
	t.Helper()
	exes, _ := filepath.Glob("/proc/[0-9]*/exe") // no /proc: nothing seen
	var pids []string
	for _, e := range exes {
		if target, err := os.Readlink(e); err == nil && target == bin {
			pids = append(pids, filepath.Base(filepath.Dir(e)))
		}
	}
	return pids
}
