#!/bin/sh
# thunder package, after install or upgrade (dpkg postinst, rpm %post).
# Starts nothing: the operator edits /etc/thunder/*.toml and enables a unit.
set -e
# The collector's state dir and the processor's target dir, made only when
# missing so an operator's own owner or mode is left alone. systemd would
# make them at the first start too (StateDirectory=, LogsDirectory=).
for d in /var/lib/thunder /var/log/thunder; do
	[ -d "$d" ] || install -d -o thunder -g thunder -m 0750 "$d"
done
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# An upgrade (dpkg: configure with the old version; rpm: 2) restarts the
	# daemons that run, so they run the new binary; one that is stopped
	# stays stopped.
	if { [ "$1" = configure ] && [ -n "$2" ]; } || [ "$1" = 2 ]; then
		systemctl try-restart thunder-collector.service thunder-processor.service || true
	fi
fi
