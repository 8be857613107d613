// Package packaging holds what a release installs: the systemd units, the
// example configs, the nfpm config and package scripts, and release.sh
// (make release), whose Windows .zip packaging/zipdir writes. Its Go test
// builds the archives and checks their entries, and builds the .deb and
// installs, upgrades, removes and purges it on this machine.
package packaging
