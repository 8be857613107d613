#!/usr/bin/env bash
# Release artifacts (make release VERSION=v1.2.3): for every target an
# archive with the binary, README, licence and example configs (a .tar.gz,
# for Linux with the systemd units; for Windows a .zip, written by packaging/zipdir
# so that no zip(1) is needed); for the Linux targets a .deb and an .rpm
# (nfpm, pinned in go.mod); SHA256SUMS of all of them.
#
#   packaging/release.sh VERSION OUTDIR [GOOS/GOARCH ...]
#
# Without targets it builds every supported one (README, "Platforms").
# PACKAGES_ONLY=1 skips the archives (the package test builds only a .deb).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:?usage: release.sh VERSION OUTDIR [GOOS/GOARCH ...]}
out=${2:?usage: release.sh VERSION OUTDIR [GOOS/GOARCH ...]}
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64 windows/amd64)
fi
case $version in
v[0-9]*.[0-9]*.[0-9]*) ;;
*) echo "release.sh: VERSION must look like v1.2.3, not $version" >&2; exit 2 ;;
esac

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit+=+dirty
fi
# Archive entries dated from the commit, not from when they were built.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
ldflags="-s -w -X main.version=$version -X main.commit=$commit"

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

docs=(README.md LICENSE packaging/collector.toml packaging/processor.toml)
units=(packaging/thunder-collector.service packaging/thunder-processor.service)

for t in "${targets[@]}"; do
	goos=${t%/*} goarch=${t#*/}
	exe=thunder
	[ "$goos" = windows ] && exe=thunder.exe
	name=thunder_${version#v}_${goos}_${goarch}
	dir=$work/$name
	mkdir -p "$dir"
	# The flags of make cross, which warms the build cache for this.
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$dir/$exe" ./cmd/thunder
	if [ -z "${PACKAGES_ONLY:-}" ]; then
		cp "${docs[@]}" "$dir/"
		if [ "$goos" = linux ]; then
			cp "${units[@]}" "$dir/" # systemd: Linux only (README, Platforms)
		fi
		touch -d "@$SOURCE_DATE_EPOCH" "$dir" "$dir"/*
		if [ "$goos" = windows ]; then
			go run ./packaging/zipdir "$out/$name.zip" "$dir"
		else
			tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner \
				-czf "$out/$name.tar.gz" "$name"
		fi
	fi
	if [ "$goos" = linux ]; then
		for p in deb rpm; do
			THUNDER_VERSION=$version THUNDER_ARCH=$goarch THUNDER_BIN=$dir/$exe \
				go tool nfpm package --config packaging/nfpm.yaml --packager "$p" --target "$out/" >/dev/null
		done
	fi
done

shopt -s nullglob
(cd "$out" && rm -f SHA256SUMS && sha256sum -- *.tar.gz *.zip *.deb *.rpm >SHA256SUMS)
(cd "$out" && ls -l)
