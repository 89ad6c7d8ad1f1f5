"""The organisers' matching relation: equal attribute text; pedestrians also same gender + inclusion."""

import itertools

import torch
from trafficfm.retrieval.relevance import AttributeCodec, is_relevant, relevance_matrix


def ped(*ones, gender="0", width=21):
    fields = [gender] + ["0"] * (width - 1)
    for i in ones:
        fields[i] = "1"
    return ",".join(fields)


def test_vehicle_equal_text_only():
    assert is_relevant("A white Audi.", "A white Audi.")
    assert not is_relevant("A white Audi.", "A white Audi SUV.")
    assert not is_relevant("A white Audi.", "a white Audi.")  # exact text, case included


def test_pedestrian_inclusion():
    query = ped(3, 5)
    assert is_relevant(query, ped(3, 5))  # equal
    assert is_relevant(query, ped(3, 5, 9))  # image has more attributes
    assert not is_relevant(query, ped(3))  # image lacks one of the query's
    assert not is_relevant(ped(3, 5, 9), query)  # asymmetric


def test_pedestrian_gender_must_match():
    assert not is_relevant(ped(3, gender="0"), ped(3, 7, gender="1"))
    assert not is_relevant(ped(3, gender="1"), ped(3, gender="0"))
    assert is_relevant(ped(3, gender="1"), ped(3, 7, gender="1"))
    # a query with no attribute besides gender matches every image of that gender
    assert is_relevant(ped(gender="1"), ped(2, 4, 20, gender="1"))
    assert not is_relevant(ped(gender="1"), ped(2, gender="0"))
    assert is_relevant(ped(gender="0"), ped(gender="0"))


def test_not_pedestrian_vectors():
    twenty = ",".join(["0"] * 20)
    assert not is_relevant(twenty, ",".join(["0"] * 19 + ["1"]))  # wrong width: equality only
    assert is_relevant(twenty, twenty)
    assert not is_relevant(ped(), "A white Audi.")
    assert not is_relevant("A white Audi.", ped())


def test_last_position_and_width_parameter():
    assert not is_relevant(ped(20), ped(19))
    assert is_relevant(ped(20), ped(19, 20))
    assert is_relevant("1,0,1", "1,1,1", width=3) and not is_relevant("1,0,1", "1,1,1")


def test_matrix_equals_scalar_rule():
    attributes = [ped(), ped(3), ped(3, 5), ped(3, 5, 9), ped(5), ped(3, gender="1"), ped(gender="1"),
                  ped(3, 5, 9, gender="1"), "A white Audi.", "A red Audi.", ",".join("0" * 20)]
    matrix = relevance_matrix(attributes, attributes)
    for (i, q), (j, g) in itertools.product(enumerate(attributes), repeat=2):
        assert bool(matrix[i, j]) == is_relevant(q, g), (q, g)


def test_codec_ids_are_stable():
    codec = AttributeCodec()
    a = codec.encode([ped(3), "A white Audi.", ped(3)])
    b = codec.encode(["A white Audi.", ped(3, 4)])
    assert a.tolist() == [0, 1, 0] and b.tolist() == [1, 2]
    m = codec.matrix(torch.tensor([0]), torch.tensor([0, 1, 2]))
    assert m.tolist() == [[True, False, True]]
