"""Questions and referring expressions of the shapes generator, checked by an interpreter written apart from it:
every expression picks exactly one object (the one it says), every answer is what the scene shows."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from vlp.workloads.data.shapes import COLOURS, SHAPES, SIZES, ShapesParams, render_sample
from vlp.workloads.data.shapes_language import ANSWERS, QUESTION_KINDS, REFEXP_KINDS, scene_language

_NOUNS = "|".join((*SHAPES, "one", "shape", "thing"))
_DESCRIPTION = rf"the (?:({'|'.join(SIZES)}) )?(?:({'|'.join(COLOURS)}) )?({_NOUNS})"
_RELATION = "left of|right of|above|below"
_PHRASE = rf"the (?:(?:{'|'.join(SIZES)}) )?(?:(?:{'|'.join(COLOURS)}) )?(?:{_NOUNS})"  # a description, nothing captured
_REFEXP = re.compile(rf"^{_DESCRIPTION}(?: ({_RELATION}) {_DESCRIPTION}| (on the left|on the right|at the top|at the bottom))?$")
_PLURALS = {shape + ("es" if shape.endswith(("s", "x")) else "s"): shape for shape in SHAPES}


def _picked(scene: list[dict], size, colour, noun) -> list[int]:
    shape = noun if noun in SHAPES else None
    return [
        i for i, o in enumerate(scene)
        if (size is None or o["size"] == size) and (colour is None or o["colour"] == colour) and (shape is None or o["shape"] == shape)
    ]


def _centre(scene, i, axis):
    box = scene[i]["box"]
    return (box[axis] + box[axis + 2]) / 2


def _beyond(scene, a, relation, b) -> bool:
    """a lies wholly on that side of b: the boxes (x1, y1 exclusive) do not overlap along the axis."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = scene[a]["box"], scene[b]["box"]
    return {"left of": ax1 <= bx0, "right of": ax0 >= bx1, "above": ay1 <= by0, "below": ay0 >= by1}[relation]


def _towards(scene, a, relation, b) -> bool:
    """a's centre is no further the other way than b's: anything a reader might call 'left of' b."""
    axis = 0 if relation in ("left of", "right of") else 1
    return _centre(scene, a, axis) <= _centre(scene, b, axis) if relation in ("left of", "above") else _centre(scene, a, axis) >= _centre(scene, b, axis)


def resolve(expression: str, scene: list[dict]) -> list[int]:
    """The objects a referring expression picks."""
    match = _REFEXP.match(expression)
    assert match, f"unparsable expression {expression!r}"
    size, colour, noun, relation, a_size, a_colour, a_noun, position = match.groups()
    if noun == "one":
        assert size or colour, f"'the one' names nothing: {expression!r}"
    picked = _picked(scene, size, colour, noun)
    if relation:
        anchors = _picked(scene, a_size, a_colour, a_noun)
        assert len(anchors) == 1, f"anchor of {expression!r} is ambiguous: {anchors}"
        candidates = [i for i in picked if i != anchors[0] and _towards(scene, i, relation, anchors[0])]
        return [i for i in candidates if _beyond(scene, i, relation, anchors[0])] if len(candidates) == 1 else candidates
    if position:
        relation = {"on the left": "left of", "on the right": "right of", "at the top": "above", "at the bottom": "below"}[position]
        assert len(picked) >= 2, f"{expression!r}: a position word for a description that already picks one object"
        return [i for i in picked if all(_beyond(scene, i, relation, j) for j in picked if j != i)]
    return picked


def _named(phrase: str, scene: list[dict]) -> int:
    match = re.fullmatch(_DESCRIPTION, phrase)
    assert match, f"unparsable description {phrase!r}"
    picked = _picked(scene, *match.groups())
    assert len(picked) == 1, f"{phrase!r} is ambiguous or empty: {picked}"
    return picked[0]


def answer(question: str, scene: list[dict]) -> str:
    """What the scene answers to a question, worked out from the objects."""
    if match := re.fullmatch(r"what (colour|shape|size) is (.+)\?", question):
        attribute, phrase = match.groups()
        named = scene[_named(phrase, scene)]
        assert named[attribute] not in phrase.split(), f"{question!r} gives its answer away"
        return named[attribute]
    if match := re.fullmatch(r"how many (?:(\w+) )?(\w+) are there\?", question):
        colour, noun = match.groups()
        if noun == "shapes":
            return str(sum(colour is None or o["colour"] == colour for o in scene))
        return str(sum(o["shape"] == _PLURALS[noun] for o in scene))
    if match := re.fullmatch(r"is there an? (\w+) (\w+)\?", question):
        colour, shape = match.groups()
        return "yes" if any((o["colour"], o["shape"]) == (colour, shape) for o in scene) else "no"
    if match := re.fullmatch(rf"is ({_PHRASE}) ({_RELATION}) ({_PHRASE})\?", question):
        first, relation, second = match.groups()
        a, b = _named(first, scene), _named(second, scene)
        opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[relation]
        if _beyond(scene, a, relation, b):
            return "yes"
        assert _beyond(scene, a, opposite, b), f"{question!r} asks about a relation the boxes leave unclear"
        return "no"
    raise AssertionError(f"unparsable question {question!r}")


def check(scene: list[dict], questions: list[dict], refexps: list[dict]) -> None:
    for item in questions:
        assert item["kind"] in QUESTION_KINDS and item["answer"] in ANSWERS
        assert answer(item["question"], scene) == item["answer"], (item, scene)
    for item in refexps:
        assert item["kind"] in REFEXP_KINDS
        assert resolve(item["expression"], scene) == [item["object"]], (item, scene)
        assert item["box"] == list(scene[item["object"]]["box"])


# Few attribute values, so scenes are full of look-alikes (the hard case for ambiguity).
_OBJECT = st.tuples(st.sampled_from(SHAPES[:2]), st.sampled_from(COLOURS[:2]), st.sampled_from(SIZES))
_BOX = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 12), st.integers(1, 12)).map(lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_OBJECT, _BOX), min_size=1, max_size=6), st.integers(0, 2**31), st.integers(0, 10**6))
def test_look_alike_scenes_get_only_unambiguous_language(objects, seed, index):
    scene = [{"shape": s, "colour": c, "size": z, "box": box} for (s, c, z), box in objects]
    questions, refexps = scene_language([o for o, _ in objects], [box for _, box in objects], seed, index)
    check(scene, questions, refexps)
    assert {q["kind"] for q in questions} >= {"count", "exists"}
    assert scene_language([o for o, _ in objects], [box for _, box in objects], seed, index) == (questions, refexps)


def test_generated_samples_over_many_seeds():
    kinds, refexp_kinds, answers, relational_scenes = set(), set(), set(), 0
    for seed in range(4):
        params = ShapesParams(samples=120, seed=seed, max_objects=3)
        for index in range(120):
            meta = render_sample(params, index)["json"]
            check(meta["objects"], meta["questions"], meta["refexps"])
            assert meta["questions"] and meta["refexps"]
            kinds |= {q["kind"] for q in meta["questions"]}
            refexp_kinds |= {r["kind"] for r in meta["refexps"]}
            answers |= {q["answer"] for q in meta["questions"]}
            relational_scenes += any(r["kind"] == "relation" for r in meta["refexps"])
    assert kinds == set(QUESTION_KINDS) and refexp_kinds == set(REFEXP_KINDS)
    assert {"yes", "no", "0", "1", "2", "3"} <= answers and set(COLOURS) | set(SHAPES) | set(SIZES) <= answers
    assert relational_scenes > 100  # of 480 scenes with one to three objects


def test_one_object_scenes_get_questions_and_expressions():
    params = ShapesParams(samples=40, seed=5, max_objects=1)
    for index in range(40):
        meta = render_sample(params, index)["json"]
        check(meta["objects"], meta["questions"], meta["refexps"])
        assert {q["kind"] for q in meta["questions"]} == {"colour", "shape", "size", "count", "exists"}
        assert [r["object"] for r in meta["refexps"]] == [0] and meta["refexps"][0]["kind"] == "attribute"


def test_language_is_deterministic_and_depends_on_the_seed():
    objects, boxes = [("circle", "red", "large"), ("square", "blue", "small"), ("star", "red", "small")], [[1, 1, 12, 12], [14, 2, 20, 8], [20, 20, 28, 28]]
    assert scene_language(objects, boxes, 3, 7) == scene_language(objects, boxes, 3, 7)
    drawn = {str(scene_language(objects, boxes, seed, 7)) for seed in range(20)}
    assert len(drawn) > 5


def test_answer_vocabulary_is_fixed_and_sorted():
    assert list(ANSWERS) == sorted(set(ANSWERS))
    assert set(ANSWERS) == {*COLOURS, *SHAPES, *SIZES, *(str(n) for n in range(7)), "yes", "no"}


def test_manifest_lists_the_answers_and_the_shard_reader_yields_the_language(tmp_path):
    from vlp.workloads.data.readers import open_source
    from vlp.workloads.data.shapes import generate_shapes

    params = ShapesParams(samples=12, seed=6, max_objects=3, shard_size=5)
    manifest = generate_shapes(params, str(tmp_path), processes=1)
    assert manifest["answers"] == list(ANSWERS)
    source = open_source(str(tmp_path))
    assert source.answers == ANSWERS
    for record in source.read():
        meta = render_sample(params, int(record.key))["json"]
        assert record.questions == tuple(meta["questions"]) and record.refexps == tuple(meta["refexps"])
