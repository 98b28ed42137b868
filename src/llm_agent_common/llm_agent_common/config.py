"""Where the suite's installed config/ lives: share/llm_agent_bringup/config, its one owner."""
from __future__ import annotations

import os
from typing import Any, Type

CONFIG_PACKAGE = 'llm_agent_bringup'


class ConfigNotFound(FileNotFoundError):
    """The bringup package (which installs config/) is not installed: name a file instead."""


def installed_config(*parts: str) -> str:
    """Return share/llm_agent_bringup/config/<parts>, or raise ConfigNotFound saying what to pass.

    Nodes find their default files here (skills.yaml, rules.yaml, worlds/) when a parameter
    leaves the path empty; a node run without the bringup package needs the path given.
    """
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        share = get_package_share_directory(CONFIG_PACKAGE)
    except PackageNotFoundError as exc:
        raise ConfigNotFound(
            f'{CONFIG_PACKAGE} is not installed, so there is no default '
            f'{os.path.join("config", *parts)}: pass its path in the node\'s parameter') from exc
    return os.path.join(share, 'config', *parts)


def read_yaml(path: str, error: Type[Exception]) -> Any:
    """The YAML document in `path`; `error('<path>: cannot read / not valid YAML: ...')` else."""
    import yaml
    try:
        with open(path, encoding='utf-8') as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise error(f'{path}: cannot read: {exc}') from exc
    except yaml.YAMLError as exc:
        raise error(f'{path}: not valid YAML: {exc}') from exc
