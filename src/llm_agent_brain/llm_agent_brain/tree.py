"""A decision tree grown by information gain from the LLM's own logged decisions (distillation).

Pure Python + numpy, no ROS. The algorithm follows C4.5 for continuous features:

- at each node, for every feature, sort the samples by value and try a threshold at the midpoint
  of every pair of neighbouring distinct values; keep the (feature, threshold) with the largest
  information gain  H(parent) - sum_k W_k/W * H(child_k), H the weighted class entropy in bits;
- samples missing a feature are left out of that feature's gain, the gain is scaled by the known
  fraction (as C4.5 does), and at prediction time they follow the heavier branch;
- stop at `max_depth`, when the node is pure, has fewer than 2 samples, or no split gains more
  than `min_gain`.

A class is the skill plus the sign of each signed parameter (`turn:+` left, `turn:-` right), so
one leaf never averages a left and a right turn. A decision later followed by a collision or a
failed action is relabelled `!avoid` with a heavier weight: it lowers its leaf's purity, and a
leaf whose majority is `!avoid` never decides. A leaf decides only when its purity and sample
count reach the thresholds given at decision time; its parameters are the mean (numbers) or
mode (strings, booleans) of the majority class's logged params, validated against the catalogue.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from llm_agent_brain.decision_types import Choice

AVOID = '!avoid'
FORMAT_VERSION = 1


def _read_json(path: str, what: str) -> Any:
    """The JSON in path, or None when there is no file; an unreadable one raises ValueError."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:  # bad UTF-8 is a ValueError too
        raise ValueError(f'{path}: cannot load the {what}: {str(exc)[:200]}') from None


@dataclass
class Sample:
    """One training example: the features seen, the decision taken, and how it turned out."""

    features: Mapping[str, float]
    skill: str
    params: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    bad: bool = False  # followed by a collision or a failed action: not to repeat


def label_for(skill: str, params: Mapping[str, Any], catalog: Any = None) -> str:
    """The class of a decision: the skill, plus the sign of each parameter that may be negative."""
    signs = []
    spec = catalog[skill] if catalog is not None and skill in catalog else None
    if spec is not None:
        for name, p in spec.params.items():
            if p.type in ('float', 'int') and p.min is not None and p.min < 0:
                v = params.get(name)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    signs.append('-' if v < 0 else '+')
    return f'{skill}:{"".join(signs)}' if signs else skill


def entropy(weights: Sequence[float]) -> float:
    """Shannon entropy in bits of a weighted class distribution."""
    w = np.asarray(weights, dtype=float)
    total = w.sum()
    if total <= 0:
        return 0.0
    p = w[w > 0] / total
    return float(-(p * np.log2(p)).sum())


def information_gain(parent: Sequence[float], children: Sequence[Sequence[float]]) -> float:
    """H(parent) - sum_k W_k / W * H(child_k), from weighted class counts."""
    total = float(np.sum(parent))
    if total <= 0:
        return 0.0
    rest = sum(float(np.sum(c)) / total * entropy(c) for c in children)
    return entropy(parent) - rest


def _entropy_rows(counts: np.ndarray) -> np.ndarray:
    """Entropy in bits of each row of a (k, classes) weighted count matrix."""
    tot = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide='ignore', invalid='ignore'):
        p = np.where(tot > 0, counts / np.where(tot > 0, tot, 1), 0.0)
        logp = np.where(p > 0, np.log2(np.where(p > 0, p, 1)), 0.0)
    return -(p * logp).sum(axis=1)


@dataclass
class Node:
    """A split (feature, threshold, left <= threshold < right) or a leaf."""

    counts: Dict[str, float]
    n: int
    feature: str = ''
    threshold: float = 0.0
    missing_left: bool = True
    left: Optional['Node'] = None
    right: Optional['Node'] = None
    gain: float = 0.0
    leaf_id: int = -1
    label: str = ''
    skill: str = ''
    params: Optional[Dict[str, Any]] = None  # None: the leaf's params did not validate

    @property
    def is_leaf(self) -> bool:
        return self.left is None

    @property
    def purity(self) -> float:
        total = sum(self.counts.values())
        return (self.counts.get(self.label, 0.0) / total) if total > 0 else 0.0

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {'counts': self.counts, 'n': self.n}
        if self.is_leaf:
            d.update(leaf_id=self.leaf_id, label=self.label, skill=self.skill, params=self.params)
        else:
            assert self.left is not None and self.right is not None
            d.update(feature=self.feature, threshold=self.threshold, missing_left=self.missing_left,
                     gain=self.gain, left=self.left.to_dict(), right=self.right.to_dict())
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> 'Node':
        node = Node(counts={str(k): _finite(v) for k, v in d['counts'].items()}, n=int(d['n']))
        if 'left' in d:
            node.feature, node.threshold = str(d['feature']), _finite(d['threshold'])
            node.missing_left, node.gain = bool(d['missing_left']), float(d.get('gain', 0.0))
            node.left, node.right = Node.from_dict(d['left']), Node.from_dict(d['right'])
        else:
            node.leaf_id, node.label = int(d['leaf_id']), str(d['label'])
            node.skill, node.params = str(d['skill']), d.get('params')
        return node


class DecisionTree:
    """A fitted tree: `decide()` where a leaf is confident, `export_text()` for people."""

    def __init__(self, root: Node, features: Sequence[str], meta: Optional[Dict[str, Any]] = None):
        self.root = root
        self.features = list(features)
        self.meta: Dict[str, Any] = dict(meta or {})

    # ---------------------------------------------------------------- training
    @classmethod
    def fit(cls, samples: Sequence[Sample], features: Sequence[str], catalog: Any = None,
            max_depth: int = 8, min_gain: float = 1e-3, avoid_weight: float = 2.0) -> 'DecisionTree':
        """Grow a tree by information gain on the named features from logged decisions."""
        features = list(features)
        if not samples:
            return cls(Node(counts={}, n=0, leaf_id=0), features, {'samples': 0})
        labels = [AVOID if s.bad else label_for(s.skill, s.params, catalog) for s in samples]
        classes = sorted(set(labels))
        cidx = {c: i for i, c in enumerate(classes)}
        X = np.array([[_num(s.features.get(f)) for f in features] for s in samples], dtype=float)
        y = np.array([cidx[lab] for lab in labels], dtype=int)
        w = np.array([max(0.0, s.weight) * (avoid_weight if s.bad else 1.0) for s in samples])
        onehot = np.zeros((len(samples), len(classes)))
        onehot[np.arange(len(samples)), y] = w
        builder = _Builder(X, onehot, classes, features, samples, labels, catalog, max_depth, min_gain)
        root = builder.build(np.arange(len(samples)), 0)
        return cls(root, features, {'samples': len(samples), 'leaves': builder.next_leaf,
                                    'classes': classes})

    # --------------------------------------------------------------- deciding
    def leaf_for(self, features: Mapping[str, float]) -> Tuple[Node, List[str]]:
        """The leaf this feature vector falls into, and the path of tests that led there."""
        node, path = self.root, []
        while not node.is_leaf:
            x = _num(features.get(node.feature))
            go_left = node.missing_left if math.isnan(x) else x <= node.threshold
            shown = 'missing' if math.isnan(x) else f'{x:.3g}'
            path.append(f'{node.feature}={shown} {"<=" if go_left else ">"} {node.threshold:.3g}')
            node = node.left if go_left else node.right  # type: ignore[assignment]
        return node, path

    def decide(self, features: Mapping[str, float], min_purity: float = 0.9,
               min_samples: int = 5) -> Optional[Choice]:
        """A Choice (source 'tree') when the leaf is confident; otherwise None (fall through)."""
        leaf, path = self.leaf_for(features)
        if not leaf.label or leaf.label == AVOID or leaf.params is None:
            return None
        purity = leaf.purity
        if purity < min_purity or leaf.n < min_samples:
            return None
        return Choice(skill=leaf.skill, params=dict(leaf.params), confidence=purity, source='tree',
                      rationale=(f'tree leaf #{leaf.leaf_id} {leaf.label} purity {purity:.2f} '
                                 f'n={leaf.n}: {" & ".join(path) or "root"}'))

    @property
    def size(self) -> int:
        """Number of nodes."""
        def count(n: Node) -> int:
            return 1 if n.is_leaf else 1 + count(n.left) + count(n.right)  # type: ignore[arg-type]
        return count(self.root)

    @property
    def depth(self) -> int:
        def d(n: Node) -> int:
            return 0 if n.is_leaf else 1 + max(d(n.left), d(n.right))  # type: ignore[arg-type]
        return d(self.root)

    def leaves(self) -> List[Node]:
        out: List[Node] = []

        def walk(n: Node) -> None:
            if n.is_leaf:
                out.append(n)
            else:
                walk(n.left)  # type: ignore[arg-type]
                walk(n.right)  # type: ignore[arg-type]
        walk(self.root)
        return out

    def export_text(self, min_purity: float = 0.9, min_samples: int = 5) -> str:
        """The tree as indented text: each test, and at each leaf its class, params, purity, n."""
        lines: List[str] = []

        def leaf_text(n: Node) -> str:
            if not n.label:
                return 'leaf #0: empty (no decisions logged yet)'
            ok = (n.label != AVOID and n.params is not None and n.purity >= min_purity
                  and n.n >= min_samples)
            params = json.dumps(n.params, sort_keys=True) if n.params is not None else 'invalid'
            dist = ', '.join(f'{k}={v:.3g}' for k, v in sorted(n.counts.items(), key=lambda kv: -kv[1]))
            return (f'leaf #{n.leaf_id}: {n.label} {params} purity {n.purity:.2f} n={n.n} '
                    f'[{"decides" if ok else "falls through"}] ({dist})')

        def walk(n: Node, indent: str) -> None:
            if n.is_leaf:
                lines.append(indent + leaf_text(n))
                return
            miss_l = ' or missing' if n.missing_left else ''
            miss_r = '' if n.missing_left else ' or missing'
            lines.append(f'{indent}{n.feature} <= {n.threshold:.4g}{miss_l}  (gain {n.gain:.3f}, n={n.n})')
            walk(n.left, indent + '|   ')  # type: ignore[arg-type]
            lines.append(f'{indent}{n.feature} > {n.threshold:.4g}{miss_r}')
            walk(n.right, indent + '|   ')  # type: ignore[arg-type]
        walk(self.root, '')
        head = (f'# decision tree: {self.size} nodes, depth {self.depth}, '
                f'{self.meta.get("samples", 0)} samples; leaves decide at purity >= {min_purity} '
                f'and n >= {min_samples}')
        return '\n'.join([head] + lines)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> Dict[str, Any]:
        return {'version': FORMAT_VERSION, 'features': self.features, 'meta': self.meta,
                'root': self.root.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'DecisionTree':
        if d.get('version') != FORMAT_VERSION:
            raise ValueError(f'unsupported tree format version {d.get("version")!r}')
        return cls(Node.from_dict(d['root']), d['features'], d.get('meta') or {})

    def save(self, path: str) -> None:
        """Write atomically: a temp file in the same folder, fsync, then os.replace."""
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str) -> Optional['DecisionTree']:
        """The saved tree, or None if there is none (a broken file raises ValueError)."""
        data = _read_json(path, 'decision tree')
        if data is None:
            return None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError,
                OverflowError) as exc:
            raise ValueError(f'{path}: malformed decision tree: {str(exc)[:200]}') from None


def _finite(value: Any) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f'non-finite number {value!r}')
    return v


def remove_stale_temp_files(path: str, older_than_s: float = 60.0) -> int:
    """Remove temp files atomic_write_text left beside `path` when a process died mid-write."""
    folder, base = os.path.split(os.path.abspath(path))
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith('.' + base + '.') and name.endswith('.tmp'):
            full = os.path.join(folder, name)
            try:
                if time.time() - os.path.getmtime(full) > older_than_s:
                    os.unlink(full)
                    removed += 1
            except OSError:
                pass
    return removed


def atomic_write_text(path: str, text: str) -> None:
    """Replace `path` with `text` so that a crash at any point leaves the old or the new file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _num(x: Any) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return math.nan


class _Builder:
    def __init__(self, X: np.ndarray, onehot: np.ndarray, classes: List[str], features: List[str],
                 samples: Sequence[Sample], labels: List[str], catalog: Any, max_depth: int,
                 min_gain: float):
        self.X, self.onehot, self.classes, self.features = X, onehot, classes, features
        self.samples, self.labels, self.catalog = samples, labels, catalog
        self.max_depth, self.min_gain = max_depth, min_gain
        self.next_leaf = 0

    def build(self, idx: np.ndarray, depth: int) -> Node:
        counts_vec = self.onehot[idx].sum(axis=0)
        counts = {c: float(v) for c, v in zip(self.classes, counts_vec) if v > 0}
        split = None
        if depth < self.max_depth and len(idx) >= 2 and len(counts) > 1:
            split = self.best_split(idx, counts_vec)
        if split is None:
            return self.leaf(idx, counts)
        j, thr, gain, missing_left = split
        x = self.X[idx, j]
        miss = np.isnan(x)
        go_left = np.where(miss, missing_left, x <= thr)
        left, right = idx[go_left], idx[~go_left]
        return Node(counts=counts, n=len(idx), feature=self.features[j], threshold=thr,
                    missing_left=bool(missing_left), gain=gain,
                    left=self.build(left, depth + 1), right=self.build(right, depth + 1))

    def best_split(self, idx: np.ndarray, parent: np.ndarray) -> Optional[Tuple[int, float, float, bool]]:
        best: Optional[Tuple[int, float, float, bool]] = None
        total_w = parent.sum()
        if total_w <= 0:
            return None
        for j in range(self.X.shape[1]):
            x = self.X[idx, j]
            known = ~np.isnan(x)
            if known.sum() < 2:
                continue
            xk, oh = x[known], self.onehot[idx][known]
            order = np.argsort(xk, kind='mergesort')
            xs, cum = xk[order], np.cumsum(oh[order], axis=0)
            cand = np.nonzero(xs[:-1] < xs[1:])[0]  # last index of the left part
            if cand.size == 0:
                continue
            known_counts = cum[-1]
            known_w = known_counts.sum()
            if known_w <= 0:
                continue
            left = cum[cand]
            right = known_counts[None, :] - left
            wl, wr = left.sum(axis=1), right.sum(axis=1)
            children = (wl * _entropy_rows(left) + wr * _entropy_rows(right)) / known_w
            gains = (entropy(known_counts) - children) * (known_w / total_w)
            k = int(np.argmax(gains))
            gain = float(gains[k])
            if gain > self.min_gain and (best is None or gain > best[2] + 1e-12):
                thr = float((xs[cand[k]] + xs[cand[k] + 1]) / 2.0)
                missing_left = bool(wl[k] >= wr[k])
                best = (j, thr, gain, missing_left)
        return best

    def leaf(self, idx: np.ndarray, counts: Dict[str, float]) -> Node:
        leaf_id = self.next_leaf
        self.next_leaf += 1
        if not counts:
            return Node(counts={}, n=len(idx), leaf_id=leaf_id)
        label = max(sorted(counts), key=lambda c: counts[c])
        node = Node(counts=counts, n=len(idx), leaf_id=leaf_id, label=label)
        if label == AVOID:
            return node
        members = [self.samples[i] for i in idx if self.labels[i] == label]
        node.skill = members[0].skill
        node.params = _aggregate_params(node.skill, members, self.catalog)
        return node


def _aggregate_params(skill: str, members: Sequence[Sample], catalog: Any) -> Optional[Dict[str, Any]]:
    """Mean of numeric params, mode of the others, then validated (clamped if need be)."""
    names = sorted({k for s in members for k in s.params})
    raw: Dict[str, Any] = {}
    for name in names:
        have = [s for s in members if name in s.params]
        vals = [s.params[name] for s in have]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            wsum = sum(max(s.weight, 0.0) for s in have)
            value: Any = (sum(float(s.params[name]) * max(s.weight, 0.0) for s in have) / wsum
                          if wsum > 0 else sum(float(v) for v in vals) / len(vals))
            value = round(value, 4)
            if all(isinstance(v, int) for v in vals):
                value = int(round(value))
            raw[name] = value
        else:
            mode = Counter(json.dumps(v, sort_keys=True) for v in vals).most_common(1)[0][0]
            raw[name] = json.loads(mode)
    if catalog is None:
        return raw
    params, reason = catalog.validate(skill, raw)
    if reason:
        try:
            params, reason = catalog.validate(skill, catalog.clamp(skill, raw))
        except (KeyError, TypeError):
            return None
    return None if reason else params


class TreeSet:
    """One tree per instruction (decisions distilled under "explore" say nothing about
    "go to the red ball"); saved together in one file, atomically."""

    def __init__(self, trees: Optional[Dict[str, DecisionTree]] = None,
                 meta: Optional[Dict[str, Any]] = None):
        self.trees: Dict[str, DecisionTree] = dict(trees or {})
        self.meta: Dict[str, Any] = dict(meta or {})

    def get(self, instruction: str) -> Optional[DecisionTree]:
        return self.trees.get(instruction)

    def decide(self, instruction: str, features: Mapping[str, float], min_purity: float,
               min_samples: int) -> Optional[Choice]:
        tree = self.trees.get(instruction)
        return tree.decide(features, min_purity, min_samples) if tree is not None else None

    @property
    def size(self) -> int:
        return sum(t.size for t in self.trees.values())

    @property
    def leaf_count(self) -> int:
        return sum(len(t.leaves()) for t in self.trees.values())

    def export_text(self, min_purity: float = 0.9, min_samples: int = 5) -> str:
        if not self.trees:
            return '# no decision tree yet (no LLM decisions logged)'
        return '\n\n'.join(f'## instruction "{ins}"\n{t.export_text(min_purity, min_samples)}'
                           for ins, t in sorted(self.trees.items()))

    def save(self, path: str) -> None:
        """Write atomically: a temp file in the same folder, fsync, then os.replace."""
        atomic_write_text(path, json.dumps({'version': FORMAT_VERSION, 'meta': self.meta,
                                            'trees': {k: t.to_dict() for k, t in self.trees.items()}}))

    def invalid_leaves(self, catalog: Any) -> List[str]:
        """Leaves whose skill and params the catalogue refuses (a tampered or stale file)."""
        bad = []
        for key, tree in self.trees.items():
            stack = [tree.root]
            while stack:
                n = stack.pop()
                if n.left is not None:
                    stack += [n.left, n.right]
                elif n.skill and n.skill != AVOID and n.params is not None:
                    _, reason = catalog.validate(n.skill, n.params)
                    if reason:
                        bad.append(f'{key!r} leaf {n.leaf_id}: {reason}')
        return bad

    @classmethod
    def load(cls, path: str) -> Optional['TreeSet']:
        """The saved trees, or None if there is no file (a broken file raises ValueError)."""
        data = _read_json(path, 'decision trees')
        if data is None:
            return None
        try:
            if data.get('version') != FORMAT_VERSION:
                raise ValueError(f'unsupported format version {data.get("version")!r}')
            return cls({str(k): DecisionTree.from_dict(v) for k, v in data['trees'].items()},
                       data.get('meta') or {})
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError,
                OverflowError) as exc:
            raise ValueError(f'{path}: malformed decision trees: {str(exc)[:200]}') from None
