#!/usr/bin/env bash
# visionllm tests, all of them:
#   1. the GoogleTest suites (CTest) of the Release build in build/
#   2. the same suites built with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   3. the libFuzzer targets of the parsers, each for VISIONLLM_FUZZ_SECONDS (default 30)
# Ends with one line "tests: N passed, N failed, N skipped"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true
FUZZ_SECONDS="${VISIONLLM_FUZZ_SECONDS:-30}"
JOBS="${VISIONLLM_TEST_JOBS:-2}"
passed=0 failed=0 skipped=0 problems=()

log() { printf '\033[1m[test]\033[0m %s\n' "$*"; }

# runs ctest in $1, adds its counts
run_ctest() {
    local dir="$1" label="$2" out
    out=$(ctest --test-dir "$dir" -j "$JOBS" --output-on-failure --timeout 600 2>&1)
    local rc=$?
    printf '%s\n' "$out" | grep -vE '^\s+Start ' | tail -n 60
    local total nfail nskip
    total=$(printf '%s\n' "$out" | sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' | tail -1)
    nfail=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' | tail -1)
    nskip=$(printf '%s\n' "$out" | grep -c '(Skipped)')
    if [ -z "$total" ]; then
        problems+=("$label: ctest did not run (rc $rc)")
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + total - nfail - nskip))
    failed=$((failed + nfail))
    skipped=$((skipped + nskip))
    [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ] && { problems+=("$label: ctest exited $rc"); failed=$((failed + 1)); }
    [ "$nfail" -ne 0 ] && problems+=("$label: $nfail failed")
}

# 1. unit tests (Release)
log "unit tests (build/)"
if cmake --build build; then
    run_ctest build "unit"
else
    problems+=("build/ does not build"); failed=$((failed + 1))
fi

# 2. the same tests under ASan + UBSan (CPU-only: the sanitizers cannot see GPU code)
log "unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)"
if [ ! -f build-asan/build.ninja ]; then
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DVISIONLLM_SANITIZE=ON -DVISIONLLM_CUDA=OFF \
          -DVISIONLLM_PYTHON="$ROOT/.venv/bin/python" >/dev/null
fi
if cmake --build build-asan; then
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0" \
        run_ctest build-asan "asan"
else
    problems+=("build-asan/ does not build"); failed=$((failed + 1))
fi

# 3. fuzz the parsers of untrusted input
log "fuzzing each parser for ${FUZZ_SECONDS}s (build-fuzz/)"
if [ ! -f build-fuzz/build.ninja ]; then
    CXX=clang++ cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if cmake --build build-fuzz; then
    for t in safetensors torch_zip pickle config image coco; do
        mkdir -p "build-fuzz/corpus-$t"
        if (cd build-fuzz && "./fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 "corpus-$t" "$ROOT/tests/fuzz/seeds/$t" > "fuzz_$t.log" 2>&1); then
            runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/fuzz_$t.log")
            log "fuzz_$t: ${runs:-?} inputs in ${FUZZ_SECONDS}s, no finding"
            passed=$((passed + 1))
        else
            tail -n 40 "build-fuzz/fuzz_$t.log"
            problems+=("fuzz_$t found a crash (build-fuzz/fuzz_$t.log)")
            failed=$((failed + 1))
        fi
    done
else
    problems+=("build-fuzz/ does not build"); failed=$((failed + 1))
fi

for p in "${problems[@]+"${problems[@]}"}"; do log "FAILED: $p"; done
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
