"""The model contract's envelope: a box less the holes the training data do not cover."""

import json

import numpy as np
import pytest

from components.contract import Envelope, Holes, ModelCard

COLUMNS = ("t", "a", "b")
HOLES = Holes(("a", "b"), ((0.5, 0.5),), 0.1, "where the generator failed")


def test_a_query_in_a_hole_is_outside_although_inside_the_box():
    envelope = Envelope(COLUMNS, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), HOLES)
    queries = np.array([[0.3, 0.55, 0.45], [0.3, 0.5, 0.65], [0.3, 0.9, 0.1], [2.0, 0.5, 0.5]])
    # In the hole (any t), just beyond its radius, elsewhere in the box, outside the box.
    assert envelope.outside(queries).tolist() == [True, False, False, True]
    assert Envelope(COLUMNS, (0.0,) * 3, (1.0,) * 3).outside(queries).tolist() == [False, False, False, True]


def test_holes_without_centres_flag_nothing():
    assert not Holes(("a",), (), 0.1).inside(np.zeros((3, 1))).any()


def test_a_card_with_holes_survives_json():
    card = ModelCard("m", {}, Envelope.of(COLUMNS, np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]), HOLES))
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again.envelope == card.envelope and again.envelope is not None and again.envelope.holes == HOLES
    # A card written before holes existed still reads, with none.
    raw = card.to_dict()
    del raw["envelope"]["holes"]
    assert ModelCard.from_dict(raw).envelope == Envelope(COLUMNS, (0.0,) * 3, (1.0,) * 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Holes(("a",), ((0.1,),), 0.0), "positive radius"),
        (lambda: Holes(("a", "b"), ((0.1,),), 0.1), "needs 2 values"),
        (lambda: Envelope(("t",), (0.0,), (1.0,), HOLES), "does not have"),
    ],
)
def test_malformed_holes_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
