#!/usr/bin/env bash
# Builds tests/consumer against xgrad two ways: the package installed (meson install into a staging
# root) and found by pkg-config, and the source tree used as a Meson subproject.
# Usage: run.sh SOURCE_ROOT BUILD_ROOT (meson test passes both).
set -euo pipefail
source_root=$(cd "$1" && pwd)
build_root=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== installed package, found by pkg-config"
meson install -C "$build_root" --destdir "$work/stage" --quiet
pc=$(dirname "$(find "$work/stage" -name xgrad.pc | head -n 1)")
[ -f "$pc/xgrad.pc" ] || { echo "no xgrad.pc was installed"; exit 1; }
libdir=$(dirname "$(find "$work/stage" -name 'libxgrad.so*' | head -n 1)")
PKG_CONFIG_PATH="$pc" PKG_CONFIG_SYSROOT_DIR="$work/stage" \
  meson setup "$work/installed" "$source_root/tests/consumer" --wrap-mode=nofallback > "$work/setup.log" || { cat "$work/setup.log"; exit 1; }
meson compile -C "$work/installed" > /dev/null
LD_LIBRARY_PATH="$libdir" "$work/installed/consumer"

echo "== source tree as a subproject"
cp -r "$source_root/tests/consumer" "$work/sub"
mkdir -p "$work/sub/subprojects"
ln -s "$source_root" "$work/sub/subprojects/xgrad"
meson setup "$work/sub-build" "$work/sub" --force-fallback-for=xgrad > "$work/setup-sub.log" || { cat "$work/setup-sub.log"; exit 1; }
meson compile -C "$work/sub-build" > /dev/null
"$work/sub-build/consumer"
echo "both consumers built and ran"
