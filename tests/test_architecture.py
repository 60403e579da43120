import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasframe import Architecture, ArchitectureError
from nasframe.spaces.nb201 import OPERATIONS, NB201Space

choice = st.recursive(st.one_of(st.text(max_size=5), st.integers(-5, 5)), lambda inner: st.lists(inner, max_size=3), max_leaves=8)


@given(st.text(min_size=1, max_size=8), st.lists(choice, max_size=6))
def test_json_round_trip_is_identity_and_hashable(space, choices):
    architecture = Architecture(space, choices)
    again = Architecture.from_json(architecture.to_json())
    assert again == architecture and hash(again) == hash(architecture)


@pytest.mark.parametrize("bad", ["", "{", "[]", '{"space": "x"}', '{"space": "x", "choices": [1.5]}',
                                 '{"space": "x", "choices": [true]}', '{"space": 3, "choices": []}'])
def test_malformed_json_fails_with_architecture_error(bad):
    with pytest.raises(ArchitectureError):
        Architecture.from_json(bad)


@given(st.lists(st.sampled_from(OPERATIONS), min_size=6, max_size=6))
def test_nb201_string_round_trip(ops):
    space = NB201Space()
    architecture = Architecture("nb201", ops)
    assert space.parse(space.format(architecture)) == architecture
    assert Architecture.from_json(architecture.to_json()) == architecture


@given(st.text(max_size=60))
def test_nb201_parse_never_crashes_on_garbage(text):
    try:
        NB201Space().parse(text)
    except ArchitectureError as exc:
        assert "NAS-Bench-201" in str(exc) or "operation" in str(exc) or "node" in str(exc) or "edge" in str(exc)


def test_validate_names_the_position_and_choices():
    with pytest.raises(ArchitectureError, match="accepted"):
        NB201Space().validate(Architecture("nb201", ["conv"] * 6))
    with pytest.raises(ArchitectureError, match="space 'other'"):
        NB201Space().validate(Architecture("other", ["none"] * 6))
