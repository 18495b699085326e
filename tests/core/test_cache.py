"""The metadata cache: per-source entries with a time-to-live on a monotonic clock."""

from __future__ import annotations

import inspect
import time

import pandas as pd

from deepanalyze_jupyter.cache import MetadataCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_default_clock_is_monotonic() -> None:
    assert inspect.signature(MetadataCache).parameters["clock"].default is time.monotonic
    assert MetadataCache()._clock is time.monotonic


def test_an_entry_lives_until_exactly_the_ttl() -> None:
    clock = FakeClock()
    cache = MetadataCache(10.0, clock=clock)
    cache.put("shop", "tables", ["orders"])
    clock.now += 9.999999
    assert cache.get("shop", "tables") == ["orders"]
    clock.now = 60.0
    assert cache.get("shop", "tables") is None
    assert repr(cache) == "<MetadataCache ttl=10.0s entries=0>"  # the expired entry is dropped


def test_a_new_value_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache = MetadataCache(10.0, clock=clock)
    cache.put("shop", "k", 1)
    clock.now += 8
    cache.put("shop", "k", 2)
    clock.now += 8
    assert cache.get("shop", "k") == 2


def test_entries_are_per_source_and_key() -> None:
    cache = MetadataCache(10.0, clock=FakeClock())
    cache.put("a", ("tables", None), 1)
    cache.put("b", ("tables", None), 2)
    assert cache.get("a", ("tables", None)) == 1
    assert cache.get("b", ("tables", None)) == 2
    assert cache.get("a", ("tables", "public")) is None


def test_clear_one_source_or_all() -> None:
    cache = MetadataCache(10.0, clock=FakeClock())
    for source in ("a", "b"):
        cache.put(source, 1, "x")
        cache.put(source, 2, "y")
    assert cache.clear("a") == 2
    assert cache.clear("a") == 0
    assert cache.get("b", 1) == "x"
    assert cache.clear() == 2
    assert cache.get("b", 2) is None


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = MetadataCache(0.0, clock=FakeClock())
    cache.put("a", "k", 1)
    assert cache.get("a", "k") is None


def test_frames_are_copied_in_and_out() -> None:
    cache = MetadataCache(10.0, clock=FakeClock())
    frame = pd.DataFrame({"name": ["a", "b"]})
    frame.attrs["truncated"] = False
    cache.put("s", "list", frame)
    frame.loc[0, "name"] = "changed before the get"
    first = cache.get("s", "list")
    assert isinstance(first, pd.DataFrame)
    first.loc[1, "name"] = "changed by a caller"
    first.attrs["truncated"] = True
    second = cache.get("s", "list")
    assert isinstance(second, pd.DataFrame)
    assert second["name"].tolist() == ["a", "b"]
    assert second.attrs == {"truncated": False}


def test_values_of_one_kind_are_those_of_the_source_still_alive() -> None:
    clock = FakeClock()
    cache = MetadataCache(10.0, clock=clock)
    cache.put("shop", ("list_items", None), "top")
    clock.now += 5
    cache.put("shop", ("list_items", "sales/"), "sales")
    cache.put("shop", ("describe", "orders"), "columns")
    cache.put("other", ("list_items", None), "theirs")
    assert sorted(cache.values("shop", "list_items")) == ["sales", "top"]
    clock.now += 6  # the first listing expired
    assert cache.values("shop", "list_items") == ["sales"]
    assert cache.values("shop", "describe") == ["columns"]
    assert cache.values("nobody", "list_items") == []
