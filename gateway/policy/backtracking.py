"""Does a pattern backtrack catastrophically? Ambiguity analysis of its NFA.

A backtracking matcher (``regex``, ``re``) that fails to match tries every way the
pattern can match each prefix of the text. That number stays small unless the pattern's
NFA is *ambiguous* in a loop (Weideman et al., "Analyzing Matching Time Behavior of
Backtracking Regular Expression Matchers by Using Ambiguity of NFA", 2016):

- **exponential** (EDA): some state can loop back to itself on one string along two
  different paths, e.g. ``(a|aa)+c``, ``(a+)+$``, ``(\\w+\\s?)*$``: each repetition
  doubles the ways to try;
- **polynomial** (IDA): two different loops, ``p`` and ``q``, each read some string ``w``,
  and ``p`` also reaches ``q`` on ``w``, e.g. ``a*a*b`` or ``\\d+\\.?\\d+x``: the text can be
  split between the loops in as many ways as it is long.

Either matters only if the match can still fail after the loop; ``(a+)+`` alone matches
at once, and is not reported. The PyPI checkers were tried first: ``regexploit`` and
``dlint`` miss ``(a|aa)+c`` (neither models alternatives that overlap), and ``redoctor``
is not licensed for commercial production use.

The NFA is built from the standard library's parse (``regex``-only syntax is not
analysed). It approximates where a backtracker differs from an automaton, always in the
direction of fewer reports: anchors, look-arounds and back-references consume nothing
(but can make a match fail), an atomic group or a possessive repeat is one character that
never backtracks, and a bounded repeat beyond ``_COPIES`` copies becomes unbounded.
Characters are compared through a small alphabet of representatives (every literal and
range end in the pattern, plus samples of each class), so two classes overlap if a
representative is in both. Analysis that would exceed ``_BUDGET`` steps is abandoned
and reports nothing: this runs on every policy load.
"""

from __future__ import annotations

import enum
import functools
import re._constants as sre_c
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.sluice.regex_tree import SubPattern, children, parse_tree

_COPIES = 16
_BUDGET = 2_000_000
_SAMPLES = "aAzZ09_ \t\n\r!\"#%&'()*+,-./:;<=>?@[\\]^`{|}~é٣\u00a0\u2028€中"
_IGNORECASE, _DOTALL = sre_c.SRE_FLAG_IGNORECASE, sre_c.SRE_FLAG_DOTALL


class Backtracking(enum.Enum):
    LINEAR = "linear"
    POLYNOMIAL = "polynomial"
    EXPONENTIAL = "exponential"


class _TooBig(Exception):
    """The analysis ran out of budget."""


@dataclass(eq=False, slots=True)
class _Node:
    """One character-consuming step of the NFA (its set is a bitmask over the alphabet)."""

    chars: int
    target: int  # the Thompson state this step leads to


@dataclass(slots=True)
class _Nfa:
    """A Thompson NFA: epsilon edges (``conditional`` where an anchor could fail) and
    character steps, which leave a state through ``steps``."""

    eps: list[list[tuple[int, bool]]] = field(default_factory=list)
    steps: list[list[_Node]] = field(default_factory=list)

    def state(self) -> int:
        self.eps.append([])
        self.steps.append([])
        return len(self.eps) - 1

    def link(self, a: int, b: int, conditional: bool = False) -> None:
        self.eps[a].append((b, conditional))


@functools.lru_cache(maxsize=1024)
def backtracking(pattern: str, ignore_case: bool = False) -> Backtracking:
    """How the worst-case time to reject a text grows with its length (for one start).

    ``LINEAR`` also where the pattern cannot be analysed.
    """
    tree = parse_tree(pattern)
    if tree is None:
        return Backtracking.LINEAR
    flags = tree.state.flags | (_IGNORECASE if ignore_case else 0)
    try:
        return _Analysis(tree, flags).run()
    except (_TooBig, RecursionError):
        return Backtracking.LINEAR


class _Analysis:
    def __init__(self, tree: SubPattern, flags: int) -> None:
        self.alphabet = _alphabet(tree)
        self.nfa = _Nfa()
        self.steps_left = _BUDGET
        self.nodes: list[_Node] = []
        self.edges: list[list[tuple[int, int]]] = []
        self.can_end: list[bool] = []
        self.component_of: dict[int, int] = {}
        self.masks: dict[tuple[Any, str, int], int] = {}
        start, self.final = self.nfa.state(), self.nfa.state()
        end = self._build(tree, start, flags)
        self.nfa.link(end, self.final)

    def _spend(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise _TooBig

    # -- the Thompson construction ---------------------------------------------------------

    def _build(self, tree: SubPattern, state: int, flags: int) -> int:
        """Append ``tree`` after ``state``; returns the state where it ends."""
        for op, av in tree:
            self._spend()
            state = self._build_one(op, av, state, flags)
        return state

    def _build_one(self, op: Any, av: Any, state: int, flags: int) -> int:
        nfa = self.nfa
        if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.ANY, sre_c.IN):
            return self._step(state, self._mask(op, av, flags))
        if op is sre_c.SUBPATTERN:
            _group, add, remove, sub = av
            return self._build(sub, state, (flags | add) & ~remove)
        if op is sre_c.BRANCH:
            end = nfa.state()
            for alternative in av[1]:
                start = nfa.state()
                nfa.link(state, start)
                nfa.link(self._build(alternative, start, flags), end)
            return end
        if op is sre_c.GROUPREF_EXISTS:
            _group, yes, no = av
            end = nfa.state()
            for alternative in (yes, no or []):
                start = nfa.state()
                nfa.link(state, start, conditional=True)
                nfa.link(self._build(alternative, start, flags), end)
            return end
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            return self._repeat(av, state, flags)
        if op in (sre_c.POSSESSIVE_REPEAT, sre_c.ATOMIC_GROUP):
            # Never backtracked into: one step over every character it can read.
            sub = av[2] if op is sre_c.POSSESSIVE_REPEAT else av
            mask = self._chars_in(sub, flags)
            return self._step(state, mask) if mask else state
        # AT, ASSERT, ASSERT_NOT, GROUPREF: consume nothing, but may fail.
        end = nfa.state()
        nfa.link(state, end, conditional=True)
        return end

    def _repeat(self, av: Any, state: int, flags: int) -> int:
        low, high, sub = av
        unbounded = high is sre_c.MAXREPEAT or high > _COPIES
        for _ in range(min(low, _COPIES)):
            state = self._build(sub, state, flags)
        if unbounded:
            loop = self.nfa.state()
            self.nfa.link(state, loop)
            body_end = self._build(sub, loop, flags)
            self.nfa.link(body_end, loop)
            return loop
        end = self.nfa.state()
        for _ in range(high - low):
            self.nfa.link(state, end)
            state = self._build(sub, state, flags)
        self.nfa.link(state, end)
        return end

    def _step(self, state: int, mask: int) -> int:
        end = self.nfa.state()
        self.nfa.steps[state].append(_Node(mask, end))
        return end

    def _chars_in(self, tree: SubPattern, flags: int) -> int:
        mask = 0
        for op, av in tree:
            self._spend()
            if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.ANY, sre_c.IN):
                mask |= self._mask(op, av, flags)
            elif op is sre_c.SUBPATTERN:
                mask |= self._chars_in(av[3], (flags | av[1]) & ~av[2])
            elif op is sre_c.BRANCH:
                for alternative in av[1]:
                    mask |= self._chars_in(alternative, flags)
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
                mask |= self._chars_in(av[2], flags)
            elif op is sre_c.ATOMIC_GROUP:
                mask |= self._chars_in(av, flags)
        return mask

    def _mask(self, op: Any, av: Any, flags: int) -> int:
        key = (op, repr(av), flags & (_IGNORECASE | _DOTALL))
        if key not in self.masks:  # a keyword list repeats the same few letters
            self.masks[key] = self._new_mask(op, av, flags)
        return self.masks[key]

    def _new_mask(self, op: Any, av: Any, flags: int) -> int:
        mask = 0
        for i, char in enumerate(self.alphabet):
            variants = {char, char.lower(), char.upper()} if flags & _IGNORECASE else {char}
            if any(_matches(op, av, c, flags) for c in variants):
                mask |= 1 << i
        return mask

    # -- the ambiguity checks --------------------------------------------------------------

    def run(self) -> Backtracking:
        self._epsilon_free()
        edges = self.edges
        components = _components(range(len(self.nodes)), lambda u: (v for v, _ in edges[u]))
        self.component_of = {u: i for i, comp in enumerate(components) for u in comp}
        loops = [
            comp
            for comp in components
            if len(comp) > 1 or any(v == comp[0] for v, _ in edges[comp[0]])
        ]
        # Only a loop the match can still fail after makes a failing search slow.
        failing = [comp for comp in loops if not all(self.can_end[u] for u in comp)]
        if any(self._exponential(comp) for comp in failing):
            return Backtracking.EXPONENTIAL
        for p_comp in loops:
            for q_comp in failing:
                if p_comp is not q_comp and self._polynomial(p_comp, q_comp):
                    return Backtracking.POLYNOMIAL
        return Backtracking.LINEAR

    def _epsilon_free(self) -> None:
        """Steps become nodes. ``edges[u]``: ``(v, ways)`` where epsilon paths lead from
        ``u`` to ``v``, ``ways`` 2 for "more than one"; ``can_end[u]``: an epsilon path
        with no anchor on it leads from ``u`` to the end of the pattern.

        Paths are counted on the epsilon graph's components: a state on an epsilon cycle
        (a loop whose body can match nothing, ``(a*)*``) reaches everything after it in
        more than one way.
        """
        nfa = self.nfa
        self.nodes = [node for steps in nfa.steps for node in steps]
        index = {id(node): i for i, node in enumerate(self.nodes)}
        states = range(len(nfa.eps))
        components = _components(states, lambda s: (t for t, _ in nfa.eps[s]))
        component_of = {s: i for i, comp in enumerate(components) for s in comp}
        # Tarjan's algorithm lists a component after every component it reaches.
        ways: list[dict[int, int]] = []
        ends: list[bool] = []
        for comp in components:
            here = len(ways)
            found: dict[int, int] = {}
            reaches_end = self.final in comp
            for state in comp:
                for node in nfa.steps[state]:
                    found[index[id(node)]] = 1
                for target, conditional in nfa.eps[state]:
                    self._spend()
                    there = component_of[target]
                    if there == here:
                        continue
                    for node_index, count in ways[there].items():
                        found[node_index] = min(found.get(node_index, 0) + count, 2)
                    reaches_end = reaches_end or (not conditional and ends[there])
            if len(comp) > 1:
                found = dict.fromkeys(found, 2)
            ways.append(found)
            ends.append(reaches_end)
        self.edges = [list(ways[component_of[node.target]].items()) for node in self.nodes]
        self.can_end = [ends[component_of[node.target]] for node in self.nodes]

    def _exponential(self, comp: list[int]) -> bool:
        """Two paths from a node back to itself on one string: in the product of the loop
        with itself, a cycle through a diagonal pair ``(u, u)`` that leaves the diagonal.
        Two epsilon paths between the same steps are a fork the pairs cannot show, so
        each becomes a node ``(u, v, 0)`` of its own between ``(u, u)`` and ``(v, v)``."""
        here = self.component_of[comp[0]]
        graph: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        todo: list[tuple[int, ...]] = [(u, u) for u in comp]
        while todo:
            pair = todo.pop()
            if pair in graph:
                continue
            out: list[tuple[int, ...]] = []
            graph[pair] = out
            if len(pair) == 3:
                out.append((pair[1], pair[1]))
                continue
            u, v = pair
            for u2, ways in self.edges[u]:
                if self.component_of[u2] != here:
                    continue
                for v2, _ in self.edges[v]:
                    self._spend()
                    if self.component_of[v2] != here:
                        continue
                    if not self.nodes[u2].chars & self.nodes[v2].chars:
                        continue
                    target = (u, u2, 0) if u == v and u2 == v2 and ways > 1 else (u2, v2)
                    out.append(target)
                    todo.append(target)
        for scc in _components(graph, lambda n: graph[n]):
            if any(n[0] == n[1] for n in scc if len(n) == 2) and any(
                len(n) == 3 or n[0] != n[1] for n in scc
            ):
                return True
        return False

    def _polynomial(self, p_comp: list[int], q_comp: list[int]) -> bool:
        """Some ``p`` loops, reaches ``q`` and ``q`` loops, all on one string: in the
        product of three copies, a path from ``(p, p, q)`` to ``(p, q, q)``."""
        p_here, q_here = self.component_of[p_comp[0]], self.component_of[q_comp[0]]
        edges, nodes = self.edges, self.nodes
        for p in p_comp:
            for q in q_comp:
                seen: set[tuple[int, int, int]] = set()
                todo = [(p, p, q)]
                while todo:
                    x, y, z = todo.pop()
                    for x2, _ in edges[x]:
                        if self.component_of[x2] != p_here:
                            continue
                        for z2, _ in edges[z]:
                            both = nodes[x2].chars & nodes[z2].chars
                            if self.component_of[z2] != q_here or not both:
                                continue
                            for y2, _ in edges[y]:
                                self._spend()
                                if not both & nodes[y2].chars:
                                    continue
                                if (x2, y2, z2) == (p, q, q):
                                    return True
                                if (x2, y2, z2) not in seen:
                                    seen.add((x2, y2, z2))
                                    todo.append((x2, y2, z2))
        return False


def _components(nodes: Iterable[Any], successors: Any) -> list[list[Any]]:
    """Strongly connected components (Tarjan's algorithm, iterative)."""
    order: dict[Any, int] = {}
    low: dict[Any, int] = {}
    stack: list[Any] = []
    on_stack: set[Any] = set()
    result: list[list[Any]] = []
    for root in nodes:
        if root in order:
            continue
        work = [(root, iter(successors(root)))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors(child))))
                elif child in on_stack:
                    low[node] = min(low[node], order[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == order[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                result.append(comp)
    return result


def _alphabet(tree: SubPattern) -> str:
    """Representatives: every literal and range end in the pattern, both cases, and a
    sample of each class, so two classes that share a character share one of these."""
    chars = set(_SAMPLES)

    def walk(sub: SubPattern) -> None:
        for op, av in sub:
            for item_op, item in av if op is sre_c.IN else [(op, av)]:
                if item_op in (sre_c.LITERAL, sre_c.NOT_LITERAL):
                    chars.add(chr(item))
                elif item_op is sre_c.RANGE:
                    chars.update((chr(item[0]), chr(item[1])))
            for child in children(av):
                walk(child)

    walk(tree)
    chars.update([c.swapcase() for c in chars if len(c.swapcase()) == 1])
    return "".join(sorted(chars))


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


_CATEGORIES: dict[Any, Callable[[str], bool]] = {
    sre_c.CATEGORY_DIGIT: str.isdecimal,
    sre_c.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    sre_c.CATEGORY_SPACE: str.isspace,
    sre_c.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    sre_c.CATEGORY_WORD: _is_word,
    sre_c.CATEGORY_NOT_WORD: lambda c: not _is_word(c),
}


def _matches(op: Any, av: Any, char: str, flags: int) -> bool:
    if op is sre_c.LITERAL:
        return ord(char) == int(av)
    if op is sre_c.NOT_LITERAL:
        return ord(char) != int(av)
    if op is sre_c.ANY:
        return bool(flags & _DOTALL) or char != "\n"
    if op is sre_c.RANGE:
        return bool(av[0] <= ord(char) <= av[1])
    if op is sre_c.CATEGORY:
        test = _CATEGORIES.get(av)
        return test is None or test(char)  # LINEBREAK and the like: assume overlap
    if op is sre_c.IN:
        negate = bool(av) and av[0][0] is sre_c.NEGATE
        items = av[1:] if negate else av
        return negate != any(_matches(o, a, char, flags) for o, a in items)
    return False
