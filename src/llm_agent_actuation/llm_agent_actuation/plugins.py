"""Find the class of a skill: `plugin: "module:Class"` in skills.yaml, else the entry-point group
`llm_agent_actuation.skills` (entry point name = skill name), else the built-in skills.

A user adds a skill by writing a `skill_api.Skill` subclass and naming it in skills.yaml (or
declaring an entry point in their own package); the server needs no edit.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Type

from llm_agent_common.catalog import SkillSpec

from .builtin_skills import BUILTIN_SKILLS
from .skill_api import Skill

ENTRY_POINT_GROUP = 'llm_agent_actuation.skills'


class PluginError(RuntimeError):
    """A skill's plugin cannot be found or is not a Skill class."""


def _check(obj: object, where: str) -> Type[Skill]:
    if not isinstance(obj, type) or not callable(getattr(obj, 'step', None)):
        raise PluginError(f'{where} is not a skill class (needs start/step)')
    return obj


def load_plugin(ref: str) -> Type[Skill]:
    """Import "package.module:Class" and return the class."""
    module_name, sep, attr = ref.partition(':')
    if not sep or not module_name or not attr:
        raise PluginError(f'plugin {ref!r} must look like "package.module:Class"')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f'plugin {ref!r}: cannot import {module_name}: {exc}') from exc
    obj = module
    for part in attr.split('.'):
        if not hasattr(obj, part):
            raise PluginError(f'plugin {ref!r}: {module_name} has no {attr}')
        obj = getattr(obj, part)
    return _check(obj, f'plugin {ref!r}')


def resolve_skill_class(spec: SkillSpec) -> Type[Skill]:
    """The class implementing a catalogue entry (config plugin, entry point, built-in)."""
    if spec.plugin:
        return load_plugin(spec.plugin)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec.name:
            try:
                return _check(ep.load(), f'entry point {ep.name!r} ({ep.value})')
            except ImportError as exc:
                raise PluginError(f'entry point {ep.name!r} ({ep.value}): {exc}') from exc
    if spec.name in BUILTIN_SKILLS:
        return BUILTIN_SKILLS[spec.name]
    raise PluginError(f'skill {spec.name!r} has no plugin, entry point or built-in class')


def skill_resources(cls: Type[Skill], spec: SkillSpec) -> tuple:
    """Resources a skill holds: the class's own, else the catalogue's `resource`."""
    return tuple(getattr(cls, 'resources', ()) or ()) or (spec.resource,)
