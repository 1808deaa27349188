#!/usr/bin/env bash
# Formats kvbm's C++ sources with the checked-in .clang-format.
#
#   scripts/format.sh           rewrite files in place
#   scripts/format.sh --check   change nothing; fail if any file is not formatted
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=(-i)
if [[ "${1:-}" == "--check" ]]; then
  mode=(--dry-run -Werror)
elif [[ $# -gt 0 ]]; then
  echo "usage: scripts/format.sh [--check]" >&2
  exit 2
fi

dirs=()
for d in include src tests bench python examples; do
  [[ -d "$d" ]] && dirs+=("$d")
done
[[ ${#dirs[@]} -eq 0 ]] && exit 0

mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.h' -o -name '*.cc' \) -print0 | sort -z)
[[ ${#files[@]} -eq 0 ]] && exit 0

clang-format --style=file "${mode[@]}" "${files[@]}"
[[ "${1:-}" == "--check" ]] && echo "format: ${#files[@]} files clean"
exit 0
