#!/bin/sh
# Runs one libFuzzer harness: replays its seeds, then fuzzes for SECONDS.
#   run.sh BINARY SECONDS
# Seeds: tests/fuzz/corpus/<name>/ (committed) plus the public corpora that
# tests/fuzz/seeds.conf lists for the harness; new inputs go to a scratch
# directory so the committed corpus only grows on purpose. Dictionary:
# tests/fuzz/dict/<name>.dict when present.
set -eu
bin=$1
seconds=$2
name=$(basename "$bin")
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/mgfuzz.$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

dirs="$work"
[ -d "$here/corpus/$name" ] && dirs="$dirs $here/corpus/$name"
if [ -f "$here/seeds.conf" ]; then
    for rel in $(awk -v n="$name" '$1 == n { for (i = 2; i <= NF; i++) print $i }' "$here/seeds.conf"); do
        for d in "$top/$rel"; do
            [ -d "$d" ] && dirs="$dirs $d"
        done
    done
fi
dict=""
[ -f "$here/dict/$name.dict" ] && dict="-dict=$here/dict/$name.dict"

# -rss_limit_mb: a parser must stay small whatever it is fed.
# Not exec: the trap must remove the scratch corpus afterwards.
# shellcheck disable=SC2086
"$bin" $dict -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 -detect_leaks=1 $dirs
