"""The skill catalogue: which skills exist, their parameter schema and bounds (config/skills.yaml).

Pure Python, no ROS: the action server validates goals with it and the brain validates every
answer with it, so a skill or parameter the server would refuse is never chosen.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from llm_agent_common.config import installed_config, read_yaml

_TYPES = {'float': (int, float), 'int': (int,), 'str': (str,), 'bool': (bool,)}
# A goal's params_json longer than this is refused before it is parsed.
MAX_PARAMS_JSON = 16384


class CatalogError(ValueError):
    """The catalogue file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a skill: its type, bounds and optional default."""

    name: str
    type: str
    min: Optional[float] = None
    max: Optional[float] = None
    max_length: Optional[int] = None
    default: Any = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class SkillSpec:
    """One skill of the catalogue."""

    name: str
    resource: str = 'base'
    timeout_s: float = 30.0
    requires_approval: bool = False
    plugin: str = ''
    params: Dict[str, ParamSpec] = field(default_factory=dict)


class SkillCatalog:
    """The configured skills; validates skill names and parameters against their schema."""

    def __init__(self, skills: Mapping[str, SkillSpec]):
        self.skills: Dict[str, SkillSpec] = dict(skills)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(self.skills)

    def __contains__(self, name: object) -> bool:
        return name in self.skills

    def __getitem__(self, name: str) -> SkillSpec:
        return self.skills[name]

    def validate(self, skill: str, params: Any) -> Tuple[Dict[str, Any], str]:
        """Return (normalised params, '') or ({}, reason) for a skill and its params.

        `params` may be a dict or a JSON object string. Defaults fill absent optional params;
        unknown params, wrong types, non-finite numbers and out-of-bounds values are refused.
        """
        spec = self.skills.get(skill)
        if spec is None:
            return {}, f'unknown skill {skill!r}; allowed: {", ".join(self.skills)}'
        if isinstance(params, (str, bytes)):
            if len(params) > MAX_PARAMS_JSON:
                return {}, f'params_json of {len(params)} characters (at most {MAX_PARAMS_JSON})'
            try:
                params = json.loads(params or '{}')
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                return {}, f'params_json is not valid JSON: {str(exc)[:120]}'
        if not isinstance(params, dict):
            return {}, 'params_json must be a JSON object'
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            return {}, f'{skill}: unknown parameter(s) {", ".join(unknown)}'
        out: Dict[str, Any] = {}
        for name, p in spec.params.items():
            if name not in params:
                if p.required:
                    return {}, f'{skill}: missing parameter {name!r}'
                out[name] = p.default
                continue
            value = params[name]
            ok_types = _TYPES[p.type]
            if isinstance(value, bool) and p.type != 'bool' or not isinstance(value, ok_types):
                return {}, f'{skill}: parameter {name!r} must be {p.type}, got {type(value).__name__}'
            if p.type in ('float', 'int'):
                if not _finite(value):
                    return {}, f'{skill}: parameter {name!r} must be finite'
                if p.min is not None and value < p.min or p.max is not None and value > p.max:
                    return {}, f'{skill}: parameter {name!r}={value} outside [{p.min}, {p.max}]'
                value = float(value) if p.type == 'float' else int(value)
            if p.type == 'str' and p.max_length is not None and len(value) > p.max_length:
                return {}, f'{skill}: parameter {name!r} longer than {p.max_length} characters'
            out[name] = value
        return out, ''

    def clamp(self, skill: str, params: Mapping[str, Any]) -> Dict[str, Any]:
        """Clamp numeric params into their bounds and fill defaults (for model-proposed values)."""
        spec = self.skills[skill]
        out: Dict[str, Any] = {}
        for name, p in spec.params.items():
            value = params.get(name, p.default)
            if p.type in ('float', 'int') and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and math.isfinite(value):
                lo = p.min if p.min is not None else value
                hi = p.max if p.max is not None else value
                value = min(max(value, lo), hi)
                value = float(value) if p.type == 'float' else int(round(value))
            elif p.type == 'str' and isinstance(value, str) and p.max_length is not None:
                value = value[:p.max_length]
            out[name] = value
        return out


def _param_spec(path: str, skill: str, name: str, raw: Any) -> ParamSpec:
    where = f'{path}: skills.{skill}.params.{name}'
    if not isinstance(raw, dict):
        raise CatalogError(f'{where} must be a mapping')
    ptype = raw.get('type')
    if ptype not in _TYPES:
        raise CatalogError(f'{where}.type must be one of {sorted(_TYPES)}, got {ptype!r}')
    unknown = set(raw) - {'type', 'min', 'max', 'max_length', 'default'}
    if unknown:
        raise CatalogError(f'{where}: unknown key(s) {sorted(unknown)}')
    lo, hi = raw.get('min'), raw.get('max')
    for key, bound in (('min', lo), ('max', hi)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                  or not _finite(bound)):
            raise CatalogError(f'{where}.{key} must be a finite number, got {bound!r}')
    if lo is not None and hi is not None and lo > hi:
        raise CatalogError(f'{where}: min {lo} is above max {hi}')
    spec = ParamSpec(name=name, type=ptype, min=lo, max=hi, max_length=raw.get('max_length'),
                     default=raw.get('default'))
    if spec.default is not None:
        _, reason = SkillCatalog({skill: SkillSpec(skill, params={name: spec})}).validate(
            skill, {name: spec.default})
        if reason:
            raise CatalogError(f'{where}.default: {reason}')
    return spec


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too big for a float (a 400-digit number)
        return False


def load_catalog(path: Optional[str] = None) -> SkillCatalog:
    """Load a skill catalogue file (default: the installed config/skills.yaml)."""
    path = path or default_catalog_path()
    data = read_yaml(path, CatalogError)
    if not isinstance(data, dict) or not isinstance(data.get('skills'), dict) or not data['skills']:
        raise CatalogError(f'{path}: needs a non-empty mapping `skills`')
    skills = {}
    for name, raw in data['skills'].items():
        raw = raw or {}
        if not isinstance(raw, dict):
            raise CatalogError(f'{path}: skills.{name} must be a mapping')
        unknown = set(raw) - {'resource', 'timeout_s', 'requires_approval', 'plugin', 'params'}
        if unknown:
            raise CatalogError(f'{path}: skills.{name}: unknown key(s) {sorted(unknown)}')
        params = {pn: _param_spec(path, name, pn, pr) for pn, pr in (raw.get('params') or {}).items()}
        timeout = raw.get('timeout_s', 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not _finite(timeout) or timeout <= 0:
            raise CatalogError(f'{path}: skills.{name}.timeout_s must be a positive finite number')
        skills[name] = SkillSpec(name=name, resource=str(raw.get('resource', 'base')),
                                 timeout_s=float(timeout),
                                 requires_approval=bool(raw.get('requires_approval', False)),
                                 plugin=str(raw.get('plugin', '')), params=params)
    return SkillCatalog(skills)


def default_catalog_path() -> str:
    """The suite's installed config/skills.yaml."""
    return installed_config('skills.yaml')
