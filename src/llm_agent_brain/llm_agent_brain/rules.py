"""Ordered decision rules on named features (config/rules.yaml), evaluated before anything else.

Pure Python, no ROS. The condition language is deliberately small and has no `eval`:

    condition := {<feature>: {<op>: <operand>, ...}, ...}     every clause must hold
               | {all: [condition, ...]} | {any: [condition, ...]} | {not: condition}
    op        := lt | le | gt | ge | eq | ne    (operand: a number, a constant or a feature name)
               | between: [low, high]           (low <= value <= high)
    value     := a literal (number, string, bool)                         for skill params
               | {ref: <feature or constant>, scale: k, offset: b, min: lo, max: hi}
               | {if: condition, then: value, else: value}

A clause on a feature that is absent or not finite is false, so a rule never fires on data it
cannot see. Rules marked `safety: true` also win over the LLM (`evaluate(..., safety_only=True)`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from llm_agent_common.config import installed_config, read_yaml

from llm_agent_brain.decision_types import Choice, Situation

_OPS: Dict[str, Tuple[str, Callable[[float, float], bool]]] = {
    'lt': ('<', lambda a, b: a < b),
    'le': ('<=', lambda a, b: a <= b),
    'gt': ('>', lambda a, b: a > b),
    'ge': ('>=', lambda a, b: a >= b),
    'eq': ('==', lambda a, b: a == b),
    'ne': ('!=', lambda a, b: a != b),
}
_RULE_KEYS = {'name', 'when', 'skill', 'params', 'safety', 'confidence', 'description'}
_TOP_KEYS = {'features', 'constants', 'rules'}

Features = Mapping[str, float]
# A compiled condition: features -> (holds, readable text of the clauses with their values).
Cond = Callable[[Features], Tuple[bool, str]]
Value = Callable[[Features], Any]


class RulesError(ValueError):
    """The rules file is malformed; the message names the file and the field."""


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: float) -> str:
    return f'{x:.3g}'


class _Compiler:
    """Turn the YAML structures into closures, checking every name and field on the way."""

    def __init__(self, path: str, features: Optional[Sequence[str]], constants: Dict[str, float]):
        self.path = path
        self.features = set(features) if features is not None else None
        self.constants = constants

    def fail(self, where: str, msg: str) -> RulesError:
        return RulesError(f'{self.path}: {where}: {msg}')

    def name(self, where: str, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise self.fail(where, f'expected a feature or constant name, got {name!r}')
        if name in self.constants:
            return name
        if self.features is not None and name not in self.features:
            raise self.fail(where, f'unknown feature {name!r} (not in `features` nor `constants`)')
        return name

    def operand(self, where: str, raw: Any) -> Tuple[Callable[[Features], Optional[float]], str]:
        if _finite(raw):
            v = float(raw)
            return (lambda f: v), _fmt(v)
        name = self.name(where, raw)
        if name in self.constants:
            c = self.constants[name]
            return (lambda f: c), f'{name}({_fmt(c)})'
        return (lambda f: _get(f, name)), name

    def cond(self, where: str, raw: Any) -> Cond:
        if not isinstance(raw, dict) or not raw:
            raise self.fail(where, 'a condition must be a non-empty mapping')
        parts: List[Cond] = []
        for key, sub in raw.items():
            here = f'{where}.{key}'
            if key in ('all', 'any'):
                if not isinstance(sub, list) or not sub:
                    raise self.fail(here, f'`{key}` needs a non-empty list of conditions')
                subs = [self.cond(f'{here}[{i}]', s) for i, s in enumerate(sub)]
                parts.append(_all(subs) if key == 'all' else _any(subs))
            elif key == 'not':
                parts.append(_not(self.cond(here, sub)))
            else:
                parts.append(self.clauses(here, key, sub))
        return _all(parts)

    def clauses(self, where: str, feature: Any, raw: Any) -> Cond:
        name = self.name(where, feature)
        if not isinstance(raw, dict) or not raw:
            raise self.fail(where, 'expected a mapping of comparisons, e.g. {lt: 0.45}')
        parts: List[Cond] = []
        for op, operand in raw.items():
            here = f'{where}.{op}'
            if op == 'between':
                if not isinstance(operand, list) or len(operand) != 2:
                    raise self.fail(here, 'expected [low, high]')
                lo, lo_txt = self.operand(here, operand[0])
                hi, hi_txt = self.operand(here, operand[1])
                parts.append(_between(name, lo, hi, lo_txt, hi_txt))
            elif op in _OPS:
                fn, txt = self.operand(here, operand)
                parts.append(_compare(name, op, fn, txt))
            else:
                raise self.fail(here, f'unknown comparison {op!r}; allowed: between, {", ".join(_OPS)}')
        return _all(parts)

    def value(self, where: str, raw: Any, ptype: str) -> Value:
        if isinstance(raw, dict):
            if 'ref' in raw:
                unknown = set(raw) - {'ref', 'scale', 'offset', 'min', 'max'}
                if unknown:
                    raise self.fail(where, f'unknown key(s) {sorted(unknown)} in a ref value')
                for k in ('scale', 'offset', 'min', 'max'):
                    if k in raw and not _finite(raw[k]):
                        raise self.fail(f'{where}.{k}', 'must be a finite number')
                fn, _ = self.operand(f'{where}.ref', raw['ref'])
                scale, offset = float(raw.get('scale', 1.0)), float(raw.get('offset', 0.0))
                lo, hi = raw.get('min'), raw.get('max')

                def ref_value(f: Features) -> Optional[float]:
                    x = fn(f)
                    if x is None:
                        return None
                    x = scale * x + offset
                    if lo is not None:
                        x = max(x, float(lo))
                    if hi is not None:
                        x = min(x, float(hi))
                    return x
                return ref_value
            if 'if' in raw:
                unknown = set(raw) - {'if', 'then', 'else'}
                if unknown or 'then' not in raw or 'else' not in raw:
                    raise self.fail(where, 'a conditional value is exactly {if: ..., then: ..., else: ...}')
                test = self.cond(f'{where}.if', raw['if'])
                then_v = self.value(f'{where}.then', raw['then'], ptype)
                else_v = self.value(f'{where}.else', raw['else'], ptype)
                return lambda f: then_v(f) if test(f)[0] else else_v(f)
            raise self.fail(where, 'a mapping value must be {ref: ...} or {if: ..., then: ..., else: ...}')
        if isinstance(raw, (list, tuple)):
            raise self.fail(where, 'lists are not parameter values')
        if raw is None:
            raise self.fail(where, 'missing value')
        if ptype in ('float', 'int') and not _finite(raw):
            raise self.fail(where, f'expected a number or {{ref: name}}, got {raw!r}')
        return lambda f: raw


def _get(f: Features, name: str) -> Optional[float]:
    x = f.get(name)
    return float(x) if _finite(x) else None


def _compare(name: str, op: str, rhs: Callable[[Features], Optional[float]], rhs_txt: str) -> Cond:
    sym, fn = _OPS[op]

    def c(f: Features) -> Tuple[bool, str]:
        a, b = _get(f, name), rhs(f)
        if a is None or b is None:
            return False, f'{name} unknown'
        return fn(a, b), f'{name}={_fmt(a)} {sym} {rhs_txt}'
    return c


def _between(name: str, lo: Callable, hi: Callable, lo_txt: str, hi_txt: str) -> Cond:
    def c(f: Features) -> Tuple[bool, str]:
        a, low, high = _get(f, name), lo(f), hi(f)
        if a is None or low is None or high is None:
            return False, f'{name} unknown'
        return low <= a <= high, f'{lo_txt} <= {name}={_fmt(a)} <= {hi_txt}'
    return c


def _all(parts: List[Cond]) -> Cond:
    if len(parts) == 1:
        return parts[0]

    def c(f: Features) -> Tuple[bool, str]:
        texts = []
        for p in parts:
            ok, txt = p(f)
            if not ok:
                return False, txt
            texts.append(txt)
        return True, ' and '.join(texts)
    return c


def _any(parts: List[Cond]) -> Cond:
    def c(f: Features) -> Tuple[bool, str]:
        for p in parts:
            ok, txt = p(f)
            if ok:
                return True, txt
        return False, 'none of any'
    return c


def _not(part: Cond) -> Cond:
    def c(f: Features) -> Tuple[bool, str]:
        ok, txt = part(f)
        return (not ok), f'not({txt})'
    return c


@dataclass
class Rule:
    """One compiled rule: a condition and the skill with its (possibly computed) params."""

    name: str
    skill: str
    condition: Cond
    params: Dict[str, Value] = field(default_factory=dict)
    safety: bool = False
    confidence: float = 1.0
    description: str = ''


class RuleSet:
    """The ordered rules; the first rule whose condition holds decides."""

    def __init__(self, rules: Sequence[Rule], catalog: Any, path: str = '<rules>'):
        self.rules = list(rules)
        self.catalog = catalog
        self.path = path
        self.invalid_params = 0  # rules that matched but computed params the catalogue refused

    @property
    def names(self) -> List[str]:
        return [r.name for r in self.rules]

    def evaluate(self, situation: Situation, safety_only: bool = False) -> Optional[Choice]:
        """Return the first matching rule's Choice (source 'rule'), or None."""
        f = situation.features
        for rule in self.rules:
            if safety_only and not rule.safety:
                continue
            ok, why = rule.condition(f)
            if not ok:
                continue
            raw = {k: v(f) for k, v in rule.params.items()}
            if any(v is None for v in raw.values()):
                continue  # a referenced feature is unknown: the rule cannot say what to do
            params, reason = self.catalog.validate(rule.skill, self.catalog.clamp(rule.skill, raw))
            if reason:
                self.invalid_params += 1
                continue
            kind = 'safety rule' if rule.safety else 'rule'
            return Choice(skill=rule.skill, params=params, confidence=rule.confidence,
                          source='rule', rationale=f'{kind} {rule.name}: {why}')
        return None


def rule_name(choice: Choice) -> str:
    """The name of the rule that made this choice ('' when no rule did)."""
    if choice.source != 'rule':
        return ''
    head = choice.rationale.split(':', 1)[0].split()
    return head[-1] if head else ''


def parse_rules(data: Any, catalog: Any, path: str = '<rules>') -> RuleSet:
    """Compile a rules document (already parsed YAML); raise RulesError naming path and field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(f'{path}: top level must be a mapping with `rules`')
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise RulesError(f'{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}')
    features = data.get('features')
    if features is not None and (not isinstance(features, list)
                                 or not all(isinstance(x, str) for x in features)):
        raise RulesError(f'{path}: features: must be a list of feature names')
    constants_raw = data.get('constants') or {}
    if not isinstance(constants_raw, dict):
        raise RulesError(f'{path}: constants: must be a mapping name -> number')
    constants: Dict[str, float] = {}
    for k, v in constants_raw.items():
        if not _finite(v):
            raise RulesError(f'{path}: constants.{k}: must be a finite number, got {v!r}')
        if features is not None and k in features:
            raise RulesError(f'{path}: constants.{k}: a constant cannot share a feature name')
        constants[str(k)] = float(v)
    rules_raw = data.get('rules') or []
    if not isinstance(rules_raw, list):
        raise RulesError(f'{path}: rules: must be a list')
    comp = _Compiler(path, features, constants)
    rules: List[Rule] = []
    seen = set()
    for i, raw in enumerate(rules_raw):
        where = f'rules[{i}]'
        if not isinstance(raw, dict):
            raise RulesError(f'{path}: {where}: must be a mapping')
        name = raw.get('name')
        if not isinstance(name, str) or not name:
            raise RulesError(f'{path}: {where}.name: required, a non-empty string')
        where = f'rules[{i}] ({name})'
        if name in seen:
            raise RulesError(f'{path}: {where}.name: duplicate rule name')
        seen.add(name)
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise RulesError(f'{path}: {where}: unknown key(s) {sorted(unknown)}; '
                             f'allowed: {sorted(_RULE_KEYS)}')
        if 'when' not in raw:
            raise RulesError(f'{path}: {where}.when: required')
        skill = raw.get('skill')
        if skill not in catalog:
            raise RulesError(f'{path}: {where}.skill: {skill!r} is not in the skill catalogue '
                             f'({", ".join(catalog.names)})')
        params_raw = raw.get('params') or {}
        if not isinstance(params_raw, dict):
            raise RulesError(f'{path}: {where}.params: must be a mapping')
        spec = catalog[skill]
        for pname in params_raw:
            if pname not in spec.params:
                raise RulesError(f'{path}: {where}.params.{pname}: {skill} has no such parameter')
        literal = all(not isinstance(v, dict) for v in params_raw.values())
        if literal:
            _, reason = catalog.validate(skill, dict(params_raw))
            if reason:
                raise RulesError(f'{path}: {where}.params: {reason}')
        confidence = raw.get('confidence', 1.0)
        if not _finite(confidence) or not 0.0 <= confidence <= 1.0:
            raise RulesError(f'{path}: {where}.confidence: must be a number in [0, 1]')
        safety = raw.get('safety', False)
        if not isinstance(safety, bool):
            raise RulesError(f'{path}: {where}.safety: must be true or false')
        rules.append(Rule(
            name=name, skill=skill, condition=comp.cond(f'{where}.when', raw['when']),
            params={k: comp.value(f'{where}.params.{k}', v, spec.params[k].type)
                    for k, v in params_raw.items()},
            safety=safety, confidence=float(confidence),
            description=str(raw.get('description', ''))))
    return RuleSet(rules, catalog, path)


def load_rules(path: str, catalog: Any) -> RuleSet:
    """Load and compile a rules file; raise RulesError naming the file and the field."""
    data = read_yaml(path, RulesError)
    return parse_rules(data, catalog, path)


def default_rules_path() -> str:
    """The suite's installed config/rules.yaml."""
    return installed_config('rules.yaml')
