#!/bin/sh
# thunder package, before removal (dpkg prerm, rpm %preun): on a removal,
# not an upgrade (dpkg: remove; rpm: 0), stop and disable the daemons.
# Both exit cleanly on SIGTERM after committing what they received.
set -e
if [ "$1" = remove ] || [ "$1" = 0 ]; then
	if [ -d /run/systemd/system ]; then
		systemctl disable --now thunder-collector.service thunder-processor.service >/dev/null 2>&1 || true
	elif command -v systemctl >/dev/null; then
		systemctl --no-reload disable thunder-collector.service thunder-processor.service >/dev/null 2>&1 || true
	fi
fi
