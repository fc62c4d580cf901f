#!/usr/bin/env bash
# Installs the build in $1 into a temporary prefix, builds tests/install against it, runs it on
# model $2 and compares its tokens with those of $3, the same program built in the tree.
set -euo pipefail
build="$1" model="$2" in_tree="$3"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
got="$("$work/build/use_gemma" "$model")"
want="$("$in_tree" "$model")"
echo "installed: $got"
echo "in tree:   $want"
[ -n "$got" ] && [ "$got" = "$want" ]
