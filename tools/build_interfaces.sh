#!/usr/bin/env bash
# Build an ament_cmake message package (default: llm_agent_interfaces) against the ROS 2 Jazzy
# wheels in a venv and install it into the venv's prefix, where the wheels' bootstrap already puts
# `lib/` on LD_LIBRARY_PATH and `lib/python3.11/site-packages` on sys.path. On a real ROS 2
# install use colcon instead.  Usage: build_interfaces.sh VENV [PACKAGE_SOURCE_DIR]
set -euo pipefail
venv=$(cd "${1:-.venv}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${2:-$top/src/llm_agent_interfaces}" && pwd)
name=$(basename "$src")
build="$top/build/$name"
mkdir -p "$build"
py="$venv/bin/python"

# Pitfall of the PyPI wheels: their exported rosidl_generator_py CMake targets name the include
# dirs of the machine that built them (/opt/python/cp311-cp311/...), and CMake's generate step
# refuses non-existent include paths. Point them at this interpreter's Python and numpy headers.
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
for f in "$venv"/share/*/cmake/export_*__rosidl_generator_pyExport.cmake; do
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" \
         -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" "$f"
done

export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" PATH="$venv/bin:$PATH"
export PYTHONPATH="$venv/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}"
cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" -DPYTHON_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=Release > "$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >> "$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
cmake --install "$build" >> "$build.log" 2>&1 || { tail -40 "$build.log"; exit 1; }
echo "$name installed into $venv"
