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
from collections import Counter
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
"""At most this many questions of each kind per image (drawn from every question the scene allows)."""

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

    def centre(self, axis: int) -> float:
        return (self.box[axis] + self.box[axis + 2]) / 2


def scene_language(
    objects: Sequence[Sequence[str]], boxes: Sequence[Sequence[int]], seed: int, index: int
) -> tuple[list[dict], list[dict]]:
    """(questions, referring expressions) for a scene of (shape, colour, size) objects with pixel boxes.

    questions: [{"question", "answer", "kind"}], at most QUESTIONS_PER_KIND per kind, answers from ANSWERS.
    refexps: [{"expression", "box", "object", "kind"}], per object in object order at most one of each kind
    (attribute, relation, position); `box` is the object's box.
    """
    things = [Thing(i, shape, colour, size, tuple(box)) for i, ((shape, colour, size), box) in enumerate(zip(objects, boxes))]
    rng = random.Random(f"vlp-shapes-language/{seed}/{index}")
    # Every description of every object, and the objects each one picks.
    descriptions = [[describe(thing, named) for named in _NAMED] for thing in things]
    picks: dict[Description, list[Thing]] = {}
    for thing, own in zip(things, descriptions):
        for description in own:
            picks.setdefault(description, []).append(thing)
    unique = [[d for d in own if len(picks[d]) == 1] for own in descriptions]
    return _questions(things, unique, rng), _refexps(things, descriptions, unique, picks, rng)


def describe(thing: Thing, named: tuple[bool, bool, bool]) -> Description:
    return (thing.size if named[0] else None, thing.colour if named[1] else None, thing.shape if named[2] else None)


def matches(thing: Thing, description: Description) -> bool:
    size, colour, shape = description
    return (size is None or size == thing.size) and (colour is None or colour == thing.colour) and (shape is None or shape == thing.shape)


def phrase(description: Description, noun: str = "shape") -> str:
    """"the large red circle"; without a shape word the noun stands in: "the red one"; naming nothing, "the shape"."""
    size, colour, shape = description
    if size is None and colour is None and shape is None and noun == "one":
        noun = "shape"
    return "the " + " ".join(word for word in (size, colour, shape or noun) if word)


def strictly(a: Thing, relation: str, b: Thing) -> bool:
    if relation == "left of":
        return a.box[2] <= b.box[0]
    if relation == "right of":
        return a.box[0] >= b.box[2]
    if relation == "above":
        return a.box[3] <= b.box[1]
    return a.box[1] >= b.box[3]


def loosely(a: Thing, relation: str, b: Thing) -> bool:
    axis = 0 if relation in ("left of", "right of") else 1
    before = a.centre(axis) <= b.centre(axis)
    after = a.centre(axis) >= b.centre(axis)
    return before if relation in ("left of", "above") else after


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x")) else "s")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _most_general(descriptions: list[Description], rng: random.Random) -> Description:
    """One of the descriptions naming fewest attributes (`descriptions` come fewest first, as `_NAMED`)."""
    fewest = _named_count(descriptions[0])
    return rng.choice([d for d in descriptions if _named_count(d) == fewest])


def _named_count(description: Description) -> int:
    return (description[0] is not None) + (description[1] is not None) + (description[2] is not None)


# ---------------------------------------------------------------------------------------------
# Questions. Candidates are cheap tuples; only the drawn ones are put into words.

_ATTRIBUTE_QUESTIONS = (  # kind, the attribute's slot in a Description, template, noun for a shapeless description
    ("colour", 1, "what colour is {}?", "shape"),
    ("shape", 2, "what shape is {}?", "thing"),
    ("size", 0, "what size is {}?", "shape"),
)


def _questions(things: list[Thing], unique: list[list[Description]], rng: random.Random) -> list[dict]:
    questions = []

    def ask(kind: str, drawn: list[tuple[str, str]]) -> None:
        questions.extend({"question": question, "answer": answer, "kind": kind} for question, answer in drawn)

    def draw(candidates: list) -> list:
        if len(candidates) <= QUESTIONS_PER_KIND:
            return candidates
        return rng.sample(candidates, QUESTIONS_PER_KIND)

    for kind, slot, template, noun in _ATTRIBUTE_QUESTIONS:
        # A question never names the attribute it asks about.
        allowed = [(thing, [d for d in unique[thing.index] if d[slot] is None]) for thing in things]
        drawn = draw([(thing, own) for thing, own in allowed if own])
        ask(kind, [(template.format(phrase(rng.choice(own), noun)), (thing.size, thing.colour, thing.shape)[slot]) for thing, own in drawn])

    shape_counts, colour_counts = Counter(t.shape for t in things), Counter(t.colour for t in things)
    missing = rng.choice([shape for shape in SHAPES if shape not in shape_counts])
    counted = [*((plural(shape), n) for shape, n in shape_counts.items()), (plural(missing), 0)]
    counted += [(f"{colour} shapes", n) for colour, n in colour_counts.items()]
    counted.append(("shapes", len(things)))
    ask("count", [(f"how many {what} are there?", str(n)) for what, n in draw(counted)])

    shown = rng.choice(things)
    present = {(t.colour, t.shape) for t in things}
    while True:  # an absent colour-shape pair that shares its colour or its shape with an object (a near miss)
        other = rng.choice(things)
        colour, shape = (other.colour, rng.choice(SHAPES)) if rng.random() < 0.5 else (rng.choice(COLOURS), other.shape)
        if (colour, shape) not in present:
            break
    exists = [(f"is there {_article(shown.colour)} {shown.colour} {shown.shape}?", "yes"), (f"is there {_article(colour)} {colour} {shape}?", "no")]
    ask("exists", draw(exists))

    pairs = []
    for i, a in enumerate(things):
        for b in things[i + 1 :]:
            if unique[a.index] and unique[b.index] and any(strictly(a, r, b) for r in RELATIONS):
                pairs.append((a, b))
    relational = []
    for a, b in draw(pairs):
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        relation = rng.choice([r for r in RELATIONS if strictly(first, r, second)])
        asked, answer = (relation, "yes") if rng.random() < 0.5 else (OPPOSITE[relation], "no")
        relational.append((f"is {phrase(rng.choice(unique[first.index]))} {asked} {phrase(rng.choice(unique[second.index]))}?", answer))
    ask("relation", relational)
    return questions


# ---------------------------------------------------------------------------------------------
# Referring expressions.


def _refexps(things: list[Thing], descriptions, unique, picks, rng: random.Random) -> list[dict]:
    # descriptions[i]: object i's descriptions as _NAMED orders them; unique[i]: those picking only it; picks: who each picks.
    refexps = []
    for target in things:
        expressions = []
        if unique[target.index]:
            expressions.append((phrase(rng.choice(unique[target.index]), rng.choice(("one", "shape"))), "attribute"))
        relational = _relational(target, things, descriptions, unique, picks, rng)
        if relational:
            expressions.append((relational, "relation"))
        positional = _positional(target, descriptions, picks, rng)
        if positional:
            expressions.append((positional, "position"))
        refexps += [{"expression": e, "box": list(target.box), "object": target.index, "kind": k} for e, k in expressions]
    return refexps


def _relational(target: Thing, things: list[Thing], descriptions, unique, picks, rng: random.Random) -> str | None:
    """"the D left of the E": E an anchor named uniquely, D the most general description that leaves only the
    target; (anchor, relation) drawn uniformly among those that allow one (the first to in a shuffled order)."""
    options = [(anchor, r) for anchor in things if anchor is not target and unique[anchor.index] for r in RELATIONS if strictly(target, r, anchor)]
    rng.shuffle(options)
    for anchor, relation in options:
        for description in descriptions[target.index]:
            picked = [t for t in picks[description] if t is not anchor and loosely(t, relation, anchor)]
            if picked == [target]:
                return f"{phrase(description)} {relation} {phrase(_most_general(unique[anchor.index], rng))}"
    return None


def _positional(target: Thing, descriptions, picks, rng: random.Random) -> str | None:
    """"the D on the left": D matches two or more objects and the target lies strictly beyond the others."""
    found = []
    for description in descriptions[target.index]:
        rivals = [t for t in picks[description] if t is not target]
        if rivals:
            found += [(description, r) for r in RELATIONS if all(strictly(target, r, rival) for rival in rivals)]
    if not found:
        return None
    description, relation = rng.choice(found)
    return f"{phrase(description)} {POSITIONS[relation]}"
