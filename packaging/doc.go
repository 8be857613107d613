// Package packaging holds what a release installs: the systemd units, the
// example configs, the nfpm config and package scripts, and release.sh
// (make release). Its Go test builds the .deb and installs, upgrades,
// removes and purges it on this machine.
package packaging
