#!/bin/sh
# thunder package, after removal (dpkg postrm, rpm %postun).
# dpkg purge has removed the configs; this removes the state and target
# dirs only if they are empty: offsets (the collector's identity key among
# them) and delivered logs are data, never deleted by a package manager.
# The thunder user stays, as Debian policy advises: files may still belong
# to it (README, "Removing").
set -e
if [ "$1" = purge ]; then
	rmdir /var/lib/thunder /var/log/thunder 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
