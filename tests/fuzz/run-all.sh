#!/bin/sh
# `make fuzz`: every harness in FUZZ_DIR for SECONDS each, one after the
# other (tests/fuzz/run.sh); stops at the first harness that finds a crash
# and says which. Crash inputs land in the current directory (libFuzzer's
# crash-<sha1> files): add each as a regression seed to corpus/<name>/.
#   run-all.sh FUZZ_DIR SECONDS
set -eu
dir=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
found=0
for bin in "$dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    found=$((found + 1))
    echo "== $(basename "$bin") for ${seconds}s"
    if ! "$here/run.sh" "$bin" "$seconds"; then
        echo "fuzz: $(basename "$bin") failed (see the crash input above)" >&2
        exit 1
    fi
done
if [ "$found" -eq 0 ]; then
    echo "fuzz: no harness in $dir (build with -DMG_FUZZ=ON: make test-build)" >&2
    exit 1
fi
echo "fuzz: $found harnesses ran ${seconds}s each without a finding"
