#!/usr/bin/env bash
# Install llama-cpp-python (requirements/llama.txt) with PYTHON's pip; extra pip arguments follow.
# PyPI ships only its source, so llama.cpp is compiled here for this CPU (-march=native), once
# per CPU kind and build options: the wheel is kept under ~/.cache/llm_agent/llama-wheels/<key>,
# the key a hash of the pinned version, the build options and this CPU's flags. (pip's own cache
# would hand a wheel built on one CPU to another: a home folder shared by an AVX-512 and an
# AVX2-only machine then ends in "Illegal instruction".) Only the library is built (no tests,
# examples, tools or server binaries), and without OpenMP: its worker threads spin while
# waiting, which takes CPU from the robot's other nodes. Without Intel AMX: on the Xeon
# (Sapphire Rapids) machines here llama.cpp 0.3.36's AMX kernels stopped the process with
# SIGILL at the first decision (`tilezero`); AVX-512 and VNNI stay. Used by `make setup` and
# the Docker images. After the install, one short run of llama.cpp on this CPU checks the build.
set -euo pipefail
PYTHON=${1:?usage: install_llama_cpp.sh PYTHON [pip args...]}
shift
REQ="$(cd "$(dirname "$0")/.." && pwd)/requirements/llama.txt"
export CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=OFF"
if [ "$(uname -m)" = x86_64 ]; then
    # Not -march=native (it brings AMX): each instruction set ggml can use, on when this CPU has it.
    flags=" $(grep -m1 '^flags' /proc/cpuinfo) "
    has() { for f in "$@"; do [[ $flags == *" $f "* ]] || { echo OFF; return; }; done; echo ON; }
    CMAKE_ARGS="$CMAKE_ARGS -DGGML_NATIVE=OFF -DGGML_SSE42=$(has sse4_2) -DGGML_AVX=$(has avx) \
-DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c) -DGGML_BMI2=$(has bmi2) \
-DGGML_AVX_VNNI=$(has avx_vnni) -DGGML_AVX512=$(has avx512f avx512cd avx512vl avx512dq avx512bw) \
-DGGML_AVX512_VBMI=$(has avx512vbmi) -DGGML_AVX512_VNNI=$(has avx512_vnni) \
-DGGML_AVX512_BF16=$(has avx512_bf16) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
start=$(date +%s)
key=$( { grep -v '^#' "$REQ"; echo "$CMAKE_ARGS"; uname -m;
         grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true; } | sha256sum | cut -c1-16)
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/llm_agent/llama-wheels/$key"
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "compiling llama.cpp for this CPU (once; the wheel goes to $wheels)"
    rm -rf "$wheels.tmp"
    "$PYTHON" -m pip wheel -q --no-deps --no-cache-dir -w "$wheels.tmp" -r "$REQ"
    rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
fi
"$PYTHON" -m pip install -q "$@" "$wheels"/llama_cpp_python-*.whl   # and its dependencies
# The same version already installed (built elsewhere, or with other options) is replaced.
"$PYTHON" -m pip install -q "$@" --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
# Check that the build runs on this CPU: a few tokens through the packaged GGUF (make setup
# installs the model package before this step; without one there is nothing to check with).
if ! "$PYTHON" - <<'EOF'
import glob, os, site, sys
import llama_cpp
found = sorted(p for d in site.getsitepackages() for p in glob.glob(os.path.join(d, '*', '*.gguf')))
if found:
    llm = llama_cpp.Llama(model_path=found[0], n_ctx=64, n_threads=1, verbose=False)
    llm.eval(llm.tokenize(b'the robot stops') * 4)
    print(f'llama.cpp runs on this CPU ({os.path.basename(found[0])}: 16 tokens evaluated)')
else:
    print('llama.cpp installed (no GGUF installed yet to check it with)', file=sys.stderr)
EOF
then
    rm -rf "$wheels"   # not kept: the next run compiles again
    echo "llama.cpp as built does not run on this CPU (see above); options: $CMAKE_ARGS" >&2
    exit 1
fi
echo "llama-cpp-python ready in $(( $(date +%s) - start )) s"
