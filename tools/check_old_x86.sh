#!/usr/bin/env bash
# Prove that one wheel runs on an older x86-64 CPU: build the wheel here (`pip wheel .`), then run it under
# qemu-user emulating an Intel Haswell (AVX2, no AVX-512) and check that minilab chooses its AVX2 kernels, that a
# forced AVX-512 variant is refused with one line instead of an illegal instruction, and that a few kernel tests
# pass.  Emulation is slow, so only a few tests run (TESTS, a pytest selection, says which).
# Needs qemu-user (apt-get install qemu-user).  Usage: tools/check_old_x86.sh [WORKDIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/minilab-old-x86}"
cpu="${CPU:-Haswell}"
tests="${TESTS:-tests/test_kernels_binary.py::test_bgemm_against_bitwise_count tests/test_kernels_binary.py::test_packed_kernel_is_bit_exact tests/test_kernels_adam.py}"
python="$(command -v python3 || command -v python)"
python="$("$python" -c 'import sys; print(sys.executable)')"

command -v qemu-x86_64 >/dev/null || { echo "qemu-x86_64 not found: apt-get install qemu-user" >&2; exit 2; }
[ "$(uname -m)" = x86_64 ] || { echo "this check runs on an x86-64 machine" >&2; exit 2; }

echo "== build the wheel (every x86-64 variant of the kernels)"
rm -rf "$work" && mkdir -p "$work/wheel" "$work/site"
# from the tracked files only, as a clean clone has them: a build/ folder or an in-place build left in the
# checkout would otherwise travel into the wheel
mkdir -p "$work/src"
(cd "$here" && git ls-files -z | xargs -0 cp --parents -t "$work/src")
(cd "$work/src" && "$python" -m pip wheel . --no-deps --no-build-isolation -q -w "$work/wheel")
wheel=$(ls "$work"/wheel/minilab-*.whl)
if "$python" -m zipfile -l "$wheel" | grep -q "minilab/_kernels\.cpython"; then
    echo "FAILED: the wheel holds a single-machine minilab/_kernels extension" >&2; exit 1
fi
"$python" -m zipfile -e "$wheel" "$work/site"
cp -r "$here/tests" "$here/pyproject.toml" "$work/"   # the tests, without the source tree beside them
echo "   $(basename "$wheel"): $(cd "$work/site/minilab" && ls _kernels_*.so | sed 's/\.cpython.*//' | tr '\n' ' ')"

emulated() { (cd "$work" && PYTHONPATH="$work/site" qemu-x86_64 -cpu "$cpu" "$python" "$@"); }

echo "== under qemu-x86_64 -cpu $cpu: the variant chosen"
emulated -c 'import minilab; r = minilab.info(); assert r["kernels"] == "avx2", r["kernels"]' \
  2> >(grep -v "TCG doesn't support" >&2)

echo "== MINILAB_ISA=avx512 on a CPU without it: one line, no illegal instruction"
out=$(cd "$work" && MINILAB_ISA=avx512 PYTHONPATH="$work/site" qemu-x86_64 -cpu "$cpu" "$python" \
      -c 'import minilab.core.config as c; c.kernels()' 2>&1 | grep -v "TCG doesn't support" || true)
echo "$out" | tail -n 1
echo "$out" | grep -q "MINILAB_ISA=avx512: this CPU cannot run" || { echo "FAILED: no clear refusal" >&2; exit 1; }

echo "== kernel tests under emulation: $tests"
emulated -m pytest -q -p no:cacheprovider $tests 2> >(grep -v "TCG doesn't support" >&2)
echo "== OK: the wheel runs on $cpu with its AVX2 kernels"
