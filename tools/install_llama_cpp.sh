#!/usr/bin/env bash
# Install llama-cpp-python (requirements/llama.txt) with PYTHON's pip; extra pip arguments follow.
# PyPI ships only its source, so pip compiles llama.cpp here, once per machine (pip keeps the
# built wheel in its cache). Only the library is built (no tests, examples, tools or server
# binaries), and without OpenMP: its worker threads spin while waiting, which takes CPU from the
# robot's other nodes. Used by `make setup` and the Docker images.
set -euo pipefail
PYTHON=${1:?usage: install_llama_cpp.sh PYTHON [pip args...]}
shift
export CMAKE_ARGS="${CMAKE_ARGS:-} -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
start=$(date +%s)
"$PYTHON" -m pip install -q "$@" -r "$(dirname "$0")/../requirements/llama.txt"
echo "llama-cpp-python ready in $(( $(date +%s) - start )) s"
