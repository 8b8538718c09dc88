"""core/options.py: the one KEY=VALUE parser of `python -m extract` and `python -m model train`,
and model/options.py FeatureSpec: the one NAME=STORE.h5[:COLUMN] parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.options import parse_options
from extract.registry import get
from model.options import FeatureSpec, TrainOptions, parse_options as train_options


@dataclass
class Toy:
    size: int = 1
    scale: float = 1.0
    flag: bool = False
    name: str = "a"
    fold: int | None = None
    per: dict[str, int] = field(default_factory=dict)


def test_values_are_coerced_to_the_field_types_and_stripped() -> None:
    toy = parse_options(Toy, [" size = 3", "scale=0.5", "flag=yes", "name= b ", "fold=none", "per.x=4"],
                        keyed={"per": "per"})
    assert toy == Toy(3, 0.5, True, "b", None, {"x": 4})


def test_bad_pairs_name_the_pair() -> None:
    with pytest.raises(ValueError, match=r"--set size=x: expected int"):
        parse_options(Toy, ["size=x"])
    with pytest.raises(ValueError, match=r"--set per.x=y: expected int"):
        parse_options(Toy, ["per.x=y"], keyed={"per": "per"})
    with pytest.raises(ValueError, match=r"--set flag=maybe: expected bool"):
        parse_options(Toy, ["flag=maybe"])
    with pytest.raises(ValueError, match=r"write KEY=VALUE"):
        parse_options(Toy, ["size"])
    with pytest.raises(ValueError, match=r"--set per: unknown option; known options: .*per\.NAME"):
        parse_options(Toy, ["per=3"], keyed={"per": "per"})


def test_base_is_copied_not_changed() -> None:
    base = Toy(per={"x": 1})
    toy = parse_options(Toy, ["per.y=2", "size=5"], base, keyed={"per": "per"})
    assert base == Toy(per={"x": 1}) and toy.per == {"x": 1, "y": 2} and toy.size == 5


def test_extract_and_model_share_the_rules() -> None:
    """Before, `python -m extract` neither stripped spaces nor named the pair of a bad value."""
    image = get("image").options_class
    assert parse_options(image, [" batch_size = 4 "]).batch_size == 4
    for parse in (lambda pairs: parse_options(image, pairs), train_options):
        with pytest.raises(ValueError, match=r"--set batch_size=x: expected int"):
            parse(["batch_size=x"])
        with pytest.raises(ValueError, match=r"--set nope: unknown option"):
            parse(["nope=1"])
    assert train_options(["max_elements.tags=3", "encoder.tags=cnn"]).max_elements_by == {"tags": 3}
    assert isinstance(train_options([]), TrainOptions)


def test_one_feature_spec_parser() -> None:
    assert FeatureSpec.parse("text=a/b.h5:features") == FeatureSpec("text", Path("a/b.h5"), "features")
    assert FeatureSpec.parse(" image =x.h5") == FeatureSpec("image", Path("x.h5"), None)
    with pytest.raises(ValueError, match="NAME=STORE.h5"):
        FeatureSpec.parse("x.h5")
