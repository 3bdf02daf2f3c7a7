#!/usr/bin/env bash
# Make a stand-in for the Dockerfile's base image in a buildah store, for machines that
# reach Debian and PyPI but no image registry (make test-images; see README, Images).
#
#   docker/stand-in-base.sh [BUILDAH ARGS...]   e.g. --root STORE/storage --runroot STORE/run
#
# A debootstrap-made Debian bookworm with Debian's Python 3.11 and pip, tagged with the
# name the Dockerfile's FROM uses. It differs from the official image (Python 3.11.2 in
# /usr/bin, not 3.11.13 in /usr/local): a test stand-in, never pushed; real builds pull
# the real base. The image carries this script's sha256 as a label, so an unchanged
# recipe reuses it and a changed one rebuilds it.
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

BASE=docker.io/library/python:3.11.13-slim-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
RECIPE=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
buildah=(buildah "$@")

for tool in buildah debootstrap; do
	command -v "$tool" >/dev/null || {
		echo "$0: '$tool' not found: apt-get install buildah debootstrap" >&2
		exit 1
	}
done

made_by=$("${buildah[@]}" inspect --type image --format '{{index .ImageAnnotations "bcd.stand-in.recipe"}}' "$BASE" 2>/dev/null || true)
if [ "$made_by" = "$RECIPE" ]; then
	echo "$BASE: stand-in up to date (recipe $RECIPE)"
	exit 0
fi

rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/stand-in-rootfs.XXXXXX")
container=
cleanup() {
	[ -z "$container" ] || "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true
	rm -rf "$rootfs"
}
trap cleanup EXIT

echo "$BASE: debootstrap bookworm from $MIRROR"
# passwd: useradd, as in the official image. python3-pip: the official image's pip.
debootstrap --variant=minbase --include=python3,python3-pip,passwd,ca-certificates \
	bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
	tail -20 "$rootfs.log" >&2
	echo "$0: debootstrap failed (full log: $rootfs.log)" >&2
	exit 1
}
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# Debian marks its Python externally managed; the official image lets pip install system-wide.
rm -f "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED

container=$("${buildah[@]}" from scratch)
mountpoint=$("${buildah[@]}" mount "$container")
tar -C "$rootfs" -cf - . | tar -C "$mountpoint" -xpf -
"${buildah[@]}" umount "$container" >/dev/null
"${buildah[@]}" config \
	--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--env LANG=C.UTF-8 --cmd '["python3"]' \
	--annotation "bcd.stand-in.recipe=$RECIPE" "$container"
"${buildah[@]}" commit --quiet --rm "$container" "$BASE" >/dev/null
container=
echo "$BASE: stand-in made (recipe $RECIPE)"
