#!/usr/bin/env bash
# Builds tests/consumer against xgrad three ways: the package installed (meson install into a staging
# root) and found by pkg-config, the same staged package found by CMake (tests/consumer/cmake), and
# the source tree used as a Meson subproject. The Meson builds also compile the consumer's own model
# at build time (xgrad-generator) and check it bit for bit against the in-process Trainer.
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
LD_LIBRARY_PATH="$libdir" "$work/installed/compiled_model"

echo "== installed package, found by CMake"
stage_prefix="$work/stage$(PKG_CONFIG_PATH="$pc" pkg-config --variable=prefix xgrad)"
cmake -G Ninja -S "$source_root/tests/consumer/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$stage_prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$work/cmake-setup.log" 2>&1 || { cat "$work/cmake-setup.log"; exit 1; }
# An xgrad installed on the machine would satisfy find_package too, and then this would test nothing.
grep -qF "xgrad_DIR:PATH=$stage_prefix/" "$work/cmake/CMakeCache.txt" || {
  echo "CMake did not take xgrad from the staging root:"; grep xgrad_DIR "$work/cmake/CMakeCache.txt"; exit 1; }
cmake --build "$work/cmake" > "$work/cmake-build.log" 2>&1 || { cat "$work/cmake-build.log"; exit 1; }
LD_LIBRARY_PATH="$libdir" "$work/cmake/consumer"

# Both packages take their flags from common_args in meson.build; this fails if one of them stops
# doing so. The target's flags must be xgrad.pc's exactly (read in a project of their own, so that the
# consumer stays what a user would write), and CMake must pass them, in order, when compiling main.cpp.
pc_flags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags-only-other xgrad | sed 's/[[:space:]]*$//')  # pkgconf ends with a space
mkdir "$work/flags"
cat > "$work/flags/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(xgrad-flags LANGUAGES CXX)
find_package(xgrad REQUIRED)
get_target_property(options xgrad::xgrad INTERFACE_COMPILE_OPTIONS)
list(JOIN options " " options)
file(WRITE "${CMAKE_BINARY_DIR}/options" "${options}")
EOF
cmake -G Ninja -S "$work/flags" -B "$work/flags/build" -DCMAKE_PREFIX_PATH="$stage_prefix" \
  > "$work/flags.log" 2>&1 || { cat "$work/flags.log"; exit 1; }
cmake_flags=$(cat "$work/flags/build/options")
[ "$cmake_flags" = "$pc_flags" ] || {
  echo "xgrad::xgrad's compile options differ from xgrad.pc's Cflags"
  echo "  CMake:      $cmake_flags"; echo "  pkg-config: $pc_flags"; exit 1; }
main_command=$(sed -n 's/^ *"command": "\(.*\)",$/\1/p' "$work/cmake/compile_commands.json")
[[ " $main_command " == *" $pc_flags "* ]] || {
  echo "CMake compiled main.cpp without xgrad.pc's flags ($pc_flags):"; echo "  $main_command"; exit 1; }

echo "== source tree as a subproject"
cp -r "$source_root/tests/consumer" "$work/sub"
mkdir -p "$work/sub/subprojects"
ln -s "$source_root" "$work/sub/subprojects/xgrad"
meson setup "$work/sub-build" "$work/sub" --force-fallback-for=xgrad > "$work/setup-sub.log" || { cat "$work/setup-sub.log"; exit 1; }
meson compile -C "$work/sub-build" > /dev/null
"$work/sub-build/consumer"
"$work/sub-build/compiled_model"
echo "all three consumers built and ran"
