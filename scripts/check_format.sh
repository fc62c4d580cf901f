#!/usr/bin/env bash
# Fails if any C++ file differs from what clang-format (.clang-format, version 14 as Debian ships
# it) makes of it. Fix with: clang-format -i $(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
set -euo pipefail
cd "$(dirname "$0")/.."
CF=$(command -v clang-format-14 || command -v clang-format)
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v '^tests/fixtures/')
bad=0
for f in "${files[@]}"; do
  if ! "$CF" --dry-run --Werror "$f" 2>/dev/null; then
    echo "format: $f differs from .clang-format (clang-format -i $f)"
    bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "format: ${#files[@]} files follow .clang-format"
exit "$bad"
