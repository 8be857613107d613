#!/bin/sh
# thunder package, before its files are unpacked (dpkg preinst, rpm %pre):
# the thunder system user and group, so that /etc/thunder and the configs
# unpack with their group. Kept on removal (see postremove.sh).
set -e
if ! getent group thunder >/dev/null; then
	groupadd --system thunder
fi
if ! getent passwd thunder >/dev/null; then
	useradd --system --gid thunder --home-dir /var/lib/thunder --no-create-home \
		--shell /usr/sbin/nologin --comment "thunder log shipper" thunder
fi
