"""Questions and referring expressions about a shapes scene, from its objects and their boxes alone.

Nothing here touches pixels or the sample's random stream: language is drawn from its own stream
(`random.Random` seeded with the dataset seed and the sample index), so adding it changed no image,
caption or earlier json field, and it stays a pure function of `(seed, index)`.

What the words mean (tests/unit/workloads/test_shapes_language.py interprets them independently):

- A description names some of an object's size, colour and shape: "the large red circle", "the red one",
  "the small shape", "the shape". It picks the objects that have every named attribute.
- "X left of Y" (right of, above, below) holds *strictly* when the boxes do not overlap along that axis
  (x1 of X <= x0 of Y; boxes are [x0, y0, x1, y1), x1 and y1 exclusive) and *loosely* when X's centre is no
  further right than Y's. Yes/no questions are asked only about strict relations (so "no" means the
  opposite holds strictly). "the D left of the E" picks, among the objects other than E that match D, those
  loosely left of E; it is emitted only when that is exactly the target and the target is strictly left of E.
- "the D on the left" (on the right, at the top, at the bottom) is used where D matches two or more objects
  and the target lies strictly left of every other match.

Ambiguous expressions are never emitted: every referring expression picks exactly one object, every
"the D" in a question names exactly one object. Scenes with one object get questions and expressions too
("what colour is the shape?", "the shape").
"""

from __future__ import annotations

import random
from typing import NamedTuple, Sequence

from vlp.workloads.data.shapes_render import COLOUR_RGB, SHAPES, SIZE_FRACTION

COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)
SIZES: tuple[str, ...] = tuple(SIZE_FRACTION)
COUNTS: tuple[str, ...] = tuple(str(n) for n in range(7))  # a scene holds at most 6 objects
ANSWERS: tuple[str, ...] = tuple(sorted({*COLOURS, *SHAPES, *SIZES, *COUNTS, "yes", "no"}))
"""Every answer a shapes question can have: the fixed answer vocabulary of the VQA task (the manifest's `answers`)."""
QUESTION_KINDS: tuple[str, ...] = ("colour", "shape", "size", "count", "exists", "relation")
REFEXP_KINDS: tuple[str, ...] = ("attribute", "relation", "position")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
POSITIONS: dict[str, str] = {"left of": "on the left", "right of": "on the right", "above": "at the top", "below": "at the bottom"}
OPPOSITE: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
QUESTIONS_PER_KIND = 2
"""At most this many questions of each kind per image (two drawn from every question the scene allows)."""

Description = tuple[str | None, str | None, str | None]  # (size, colour, shape); None: not named
# Which attributes a description names, fewest first (so the first unique one found is the most general).
_NAMED = tuple(
    sorted(((size, colour, shape) for size in (False, True) for colour in (False, True) for shape in (False, True)), key=sum)
)


class Thing(NamedTuple):
    index: int
    shape: str
    colour: str
    size: str
    box: tuple[int, int, int, int]


def relations(a: Sequence[float], b: Sequence[float]) -> tuple[tuple[str, ...], frozenset[str]]:
    """(relations box a holds to box b strictly, those it holds loosely): strictly when the boxes ([x0, y0, x1, y1),
    x1 and y1 exclusive) do not overlap along that axis, loosely when a's centre is no further the other way."""
    strict = []
    if a[2] <= b[0]:
        strict.append("left of")
    if a[0] >= b[2]:
        strict.append("right of")
    if a[3] <= b[1]:
        strict.append("above")
    if a[1] >= b[3]:
        strict.append("below")
    ax, ay, bx, by = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]  # twice the centres
    return tuple(strict), _LOOSE[(ax <= bx, ax >= bx, ay <= by, ay >= by)]


# The loose relations for each outcome of the four centre comparisons (left of, right of, above, below).
_LOOSE = {
    flags: frozenset(relation for relation, holds in zip(RELATIONS, flags) if holds)
    for flags in ((l, r, u, d) for l in (False, True) for r in (False, True) for u in (False, True) for d in (False, True))
}


class _Scene:
    """A scene's objects with what every sentence about it needs, computed once: each object's descriptions (as
    `_NAMED` orders them), the objects each description picks, the ones that pick only that object, and the
    relations between every two objects."""

    def __init__(self, things: list[Thing]):
        self.things = things
        self.descriptions = [[describe(thing, named) for named in _NAMED] for thing in things]
        self.picks: dict[Description, list[int]] = {}
        for thing, own in zip(things, self.descriptions):
            for description in own:
                self.picks.setdefault(description, []).append(thing.index)
        self.unique = [[d for d in own if len(self.picks[d]) == 1] for own in self.descriptions]
        pairs = [[relations(a.box, b.box) for b in things] for a in things]
        self.strict = [[pair[0] for pair in row] for row in pairs]
        self.loose = [[pair[1] for pair in row] for row in pairs]


def scene_language(
    objects: Sequence[Sequence[str]], boxes: Sequence[Sequence[int]], seed: int, index: int
) -> tuple[list[dict], list[dict]]:
    """(questions, referring expressions) for a scene of (shape, colour, size) objects with pixel boxes.

    questions: [{"question", "answer", "kind"}], at most QUESTIONS_PER_KIND per kind, answers from ANSWERS.
    refexps: [{"expression", "box", "object", "kind"}], per object in object order at most one of each kind
    (attribute, relation, position); `box` is the object's box.
    """
    scene = _Scene([Thing(i, shape, colour, size, tuple(box)) for i, ((shape, colour, size), box) in enumerate(zip(objects, boxes))])
    rng = random.Random(f"vlp-shapes-language/{seed}/{index}")
    return _questions(scene, rng), _refexps(scene, rng)


def describe(thing: Thing, named: tuple[bool, bool, bool]) -> Description:
    return (thing.size if named[0] else None, thing.colour if named[1] else None, thing.shape if named[2] else None)


def phrase(description: Description, noun: str = "shape") -> str:
    """"the large red circle"; without a shape word the noun stands in: "the red one"; naming nothing, "the shape"."""
    size, colour, shape = description
    if shape is None and noun == "one" and size is None and colour is None:
        noun = "shape"
    text = "the "
    if size is not None:
        text += size + " "
    if colour is not None:
        text += colour + " "
    return text + (shape or noun)


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x")) else "s")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(rng: random.Random, options: Sequence):
    """One of `options`, uniformly: `random()` scaled costs a third of `choice`'s rejection sampling, and language
    is drawn a dozen times per sample."""
    return options[int(rng.random() * len(options))]


def _most_general(descriptions: list[Description], rng: random.Random) -> Description:
    """One of the descriptions naming fewest attributes (`descriptions` come fewest first, as `_NAMED`)."""
    fewest = _named_count(descriptions[0])
    return _pick(rng, [d for d in descriptions if _named_count(d) == fewest])


def _named_count(description: Description) -> int:
    return (description[0] is not None) + (description[1] is not None) + (description[2] is not None)


# ---------------------------------------------------------------------------------------------
# Questions. Candidates are cheap tuples; only the drawn ones are put into words.

_ATTRIBUTE_QUESTIONS = (  # kind, the attribute's slot in a Description, template, noun for a shapeless description
    ("colour", 1, "what colour is {}?", "shape"),
    ("shape", 2, "what shape is {}?", "thing"),
    ("size", 0, "what size is {}?", "shape"),
)


def _questions(scene: _Scene, rng: random.Random) -> list[dict]:
    things, unique = scene.things, scene.unique
    questions = []

    def ask(kind: str, drawn: list[tuple[str, str]]) -> None:
        questions.extend({"question": question, "answer": answer, "kind": kind} for question, answer in drawn)

    def draw(candidates: list) -> list:
        if len(candidates) <= QUESTIONS_PER_KIND:
            return candidates
        first = int(rng.random() * len(candidates))
        second = int(rng.random() * (len(candidates) - 1))
        return [candidates[first], candidates[second + (second >= first)]]

    for kind, slot, template, noun in _ATTRIBUTE_QUESTIONS:
        # A question never names the attribute it asks about.
        allowed = [(thing, [d for d in unique[thing.index] if d[slot] is None]) for thing in things]
        drawn = draw([(thing, own) for thing, own in allowed if own])
        ask(kind, [(template.format(phrase(_pick(rng, own), noun)), (thing.size, thing.colour, thing.shape)[slot]) for thing, own in drawn])

    shape_counts: dict[str, int] = {}
    colour_counts: dict[str, int] = {}
    for thing in things:
        shape_counts[thing.shape] = shape_counts.get(thing.shape, 0) + 1
        colour_counts[thing.colour] = colour_counts.get(thing.colour, 0) + 1
    missing = _pick(rng, [shape for shape in SHAPES if shape not in shape_counts])
    counted = [*((plural(shape), n) for shape, n in shape_counts.items()), (plural(missing), 0)]
    counted += [(f"{colour} shapes", n) for colour, n in colour_counts.items()]
    counted.append(("shapes", len(things)))
    ask("count", [(f"how many {what} are there?", str(n)) for what, n in draw(counted)])

    shown = _pick(rng, things)
    present = {(t.colour, t.shape) for t in things}
    while True:  # an absent colour-shape pair that shares its colour or its shape with an object (a near miss)
        other = _pick(rng, things)
        colour, shape = (other.colour, _pick(rng, SHAPES)) if rng.random() < 0.5 else (_pick(rng, COLOURS), other.shape)
        if (colour, shape) not in present:
            break
    ask("exists", [(f"is there {_article(shown.colour)} {shown.colour} {shown.shape}?", "yes"), (f"is there {_article(colour)} {colour} {shape}?", "no")])

    named = [i for i in range(len(things)) if unique[i]]
    pairs = [(a, b) for k, a in enumerate(named) for b in named[k + 1 :] if scene.strict[a][b]]
    relational = []
    for a, b in draw(pairs):
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        relation = _pick(rng, scene.strict[first][second])
        asked, answer = (relation, "yes") if rng.random() < 0.5 else (OPPOSITE[relation], "no")
        relational.append((f"is {phrase(_pick(rng, unique[first]))} {asked} {phrase(_pick(rng, unique[second]))}?", answer))
    ask("relation", relational)
    return questions


# ---------------------------------------------------------------------------------------------
# Referring expressions.


def _refexps(scene: _Scene, rng: random.Random) -> list[dict]:
    refexps = []
    for target in scene.things:
        expressions = []
        if scene.unique[target.index]:
            expressions.append((phrase(_pick(rng, scene.unique[target.index]), _pick(rng, ("one", "shape"))), "attribute"))
        relational = _relational(scene, target.index, rng)
        if relational:
            expressions.append((relational, "relation"))
        positional = _positional(scene, target.index, rng)
        if positional:
            expressions.append((positional, "position"))
        refexps += [{"expression": e, "box": list(target.box), "object": target.index, "kind": k} for e, k in expressions]
    return refexps


def _relational(scene: _Scene, target: int, rng: random.Random) -> str | None:
    """"the D left of the E": E an anchor named uniquely, D the most general description that leaves only the
    target; (anchor, relation) drawn uniformly among those that allow one (the first to in a shuffled order)."""
    strict, loose, unique = scene.strict, scene.loose, scene.unique
    options = [(anchor, r) for anchor in range(len(scene.things)) if anchor != target and unique[anchor] for r in strict[target][anchor]]
    rng.shuffle(options)
    for anchor, relation in options:
        for description in scene.descriptions[target]:
            picked = [k for k in scene.picks[description] if k != anchor and relation in loose[k][anchor]]
            if picked == [target]:
                return f"{phrase(description)} {relation} {phrase(_most_general(unique[anchor], rng))}"
    return None


def _positional(scene: _Scene, target: int, rng: random.Random) -> str | None:
    """"the D on the left": D matches two or more objects and the target lies strictly beyond the others."""
    found = []
    for description in scene.descriptions[target]:
        rivals = [k for k in scene.picks[description] if k != target]
        if rivals:
            beyond = set(scene.strict[target][rivals[0]]).intersection(*(scene.strict[target][k] for k in rivals[1:]))
            found += [(description, r) for r in RELATIONS if r in beyond]
    if not found:
        return None
    description, relation = _pick(rng, found)
    return f"{phrase(description)} {POSITIONS[relation]}"
