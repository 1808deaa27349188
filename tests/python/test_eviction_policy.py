"""Eviction policies written in Python for kvbm.replay(data=False) (docs/custom_eviction.md, "Python")."""

from __future__ import annotations

import collections
import threading

import pytest

import kvbm

# G1 alone, G1 + G2, and all three tiers; every tier runs the policy under test.
CONFIGS = [
    {"g1": {"num_blocks": 48}},
    {"g1": {"num_blocks": 64}, "g2": {"num_blocks": 128}},
    {"g1": {"num_blocks": 64}, "g2": {"num_blocks": 128}, "g3": {"num_blocks": 256},
     "offload": {"g3_min_frequency": 0}},
]
TIERS = ("g1", "g2", "g3")


def run(config, eviction, **kw):
    kw.setdefault("requests", 300)
    return kvbm.replay(None, config, data=False, eviction=eviction, seed=5, block_tokens=16, **kw)


class PyLru:
    """kvbm's lru in Python: least recently released (or touched) first. Copies do not move a block
    (pin/unpin keep its place, and pins_keep_state says so), as in the C++ policy."""

    name = "py_lru"
    pins_keep_state = True

    def __init__(self, capacity: int) -> None:
        self.order: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.pinned: set[int] = set()
        self.threads: set[int] = set()

    def insert(self, block_id: int, info: kvbm.InactiveBlockInfo) -> None:
        self.threads.add(threading.get_ident())
        if block_id in self.pinned:  # used while it was being copied: it moves to the back
            self.pinned.discard(block_id)
            del self.order[block_id]
        self.order[block_id] = None

    def erase(self, block_id: int) -> None:
        del self.order[block_id]

    def touch(self, block_id: int) -> None:
        self.order.move_to_end(block_id)

    def pin(self, block_id: int) -> None:
        self.pinned.add(block_id)

    def unpin(self, block_id: int, info: kvbm.InactiveBlockInfo) -> None:
        self.pinned.discard(block_id)

    def evict(self) -> int | None:
        for block_id in self.order:
            if block_id not in self.pinned:
                del self.order[block_id]
                return block_id
        return None


class NewestFirst:
    """Deliberately bad: evicts the most recently released block (a stack)."""

    def __init__(self, capacity: int) -> None:
        self.order: collections.OrderedDict[int, None] = collections.OrderedDict()

    def insert(self, block_id, info):
        self.order[block_id] = None

    def erase(self, block_id):
        del self.order[block_id]

    def touch(self, block_id):
        self.order.move_to_end(block_id)

    def evict(self):
        return self.order.popitem(last=True)[0] if self.order else None


class Liar(PyLru):
    """Every third eviction names a block that is not in its set (out of range or long gone)."""

    name = "liar"

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.capacity = capacity
        self.calls = 0

    def evict(self):
        self.calls += 1
        if self.calls % 3 == 0:
            return self.capacity + 7
        return super().evict()


@pytest.mark.parametrize("config", CONFIGS, ids=["g1", "g1g2", "g1g2g3"])
def test_python_lru_equals_builtin_lru(config):
    cxx = run(config, "lru")
    py = run(config, PyLru)
    assert py["blocks_hit"] == cxx["blocks_hit"]
    assert py["blocks_uncached"] == cxx["blocks_uncached"]
    for tier in TIERS:
        assert py["tiers"][tier]["hits"] == cxx["tiers"][tier]["hits"], tier
        assert py["tiers"][tier]["policy_violations"] == 0
    assert cxx["blocks_hit"] > 0
    # The report names the class's `name` on every tier it runs.
    assert py["eviction"] == "py_lru"
    for tier in TIERS:
        if py["tiers"][tier]["enabled"]:
            assert py["tiers"][tier]["eviction"] == "py_lru"
            assert py["settings"]["eviction"][tier] == "py_lru"


def test_hooks_run_on_the_calling_thread_and_get_info():
    seen = []

    class Recording(PyLru):
        def __init__(self, capacity):
            super().__init__(capacity)
            seen.append(self)

        def insert(self, block_id, info):
            assert isinstance(info, kvbm.InactiveBlockInfo)
            assert 0 <= info.priority <= 100 and isinstance(info.is_leaf, bool)
            assert isinstance(info.is_tail, bool) and info.depth >= 0 and info.sequence_hash >= 0
            assert info == (info.priority, info.is_leaf, info.is_tail, info.depth, info.sequence_hash)
            super().insert(block_id, info)

    report = run(CONFIGS[2], Recording)
    assert report["eviction"] == "py_lru"  # the inherited `name`
    assert len(seen) == 3  # one instance per pool: G1, G2, G3
    threads = set().union(*(p.threads for p in seen))
    assert threads == {threading.get_ident()}


def test_lineage_and_depth_reach_a_policy_that_asks():
    depths, leaf_changes = set(), []

    class Deep(PyLru):
        uses_lineage = True
        uses_depth = True

        def insert(self, block_id, info):
            depths.add(info.depth)
            super().insert(block_id, info)

        def set_leaf(self, block_id, is_leaf):
            assert block_id in self.order
            leaf_changes.append(is_leaf)

    run(CONFIGS[0], Deep)
    assert max(depths) > 0
    assert leaf_changes


def test_a_bad_policy_runs_and_loses():
    for config in CONFIGS:
        lru = run(config, "lru")
        bad = run(config, NewestFirst)
        assert bad["eviction"] == "NewestFirst"
        assert all(bad["tiers"][t]["policy_violations"] == 0 for t in TIERS)
        assert bad["requests"] == lru["requests"]
        # Clearly below: at most 90 % of LRU's hits on every configuration.
        assert bad["blocks_hit"] < 0.9 * lru["blocks_hit"], (bad["blocks_hit"], lru["blocks_hit"])


def test_victims_outside_the_set_are_overruled():
    lru = run(CONFIGS[0], "lru")
    liar = run(CONFIGS[0], Liar)
    assert liar["requests"] == lru["requests"]
    assert liar["tiers"]["g1"]["policy_violations"] > 0
    # Each overruled victim is LRU's own choice; hits stay in LRU's range.
    assert 0.8 * lru["blocks_hit"] <= liar["blocks_hit"] <= lru["blocks_hit"] * 1.2
    assert lru["tiers"]["g1"]["policy_violations"] == 0


# (touch is not among them: replay never uses a block without matching it, which erases it from the set.)
@pytest.mark.parametrize("hook", ["__init__", "insert", "erase", "evict"])
def test_an_exception_in_a_hook_is_raised_to_the_caller(hook, capfd):
    class Broken(PyLru):
        def __init__(self, capacity):
            super().__init__(capacity)
            if hook == "__init__":
                raise LookupError("boom in __init__")

        def insert(self, block_id, info):
            if hook == "insert":
                raise LookupError("boom in insert")
            super().insert(block_id, info)

        def erase(self, block_id):
            if hook == "erase":
                raise LookupError("boom in erase")
            super().erase(block_id)

        def evict(self):
            if hook == "evict":
                raise LookupError("boom in evict")
            return super().evict()

    with pytest.raises(LookupError, match=rf"{hook}\(.*\) raised LookupError: boom in {hook}") as info:
        run(CONFIGS[1], Broken)
    assert isinstance(info.value.__cause__, LookupError)  # the original, with its traceback
    # The rest of the request ran on the adapter's LRU stand-in: no victim was overruled (nothing logged).
    assert "kvbm: eviction policy" not in capfd.readouterr().err
    # The temporary registration is gone: no "py:" name is left among the choices.
    with pytest.raises(ValueError) as err:
        run(CONFIGS[0], "no_such_policy")
    assert "py:" not in str(err.value)


def test_evict_must_return_an_int_or_none():
    class Wrong(PyLru):
        def evict(self):
            super().evict()
            return "block"

    with pytest.raises(TypeError, match=r"evict\(\) must return a block id"):
        run(CONFIGS[0], Wrong)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="data=False"):
        kvbm.replay(None, CONFIGS[0], data=True, eviction=PyLru, requests=10)
    with pytest.raises(ValueError, match=r"eviction must be one of lru, .*s3fifo.*optimal.*got 'belady'"):
        run(CONFIGS[0], "belady")
    with pytest.raises(TypeError, match="needs a method 'evict'"):
        run(CONFIGS[0], type("NoEvict", (), {"insert": lambda *a: None, "erase": lambda *a: None,
                                              "touch": lambda *a: None}))
    with pytest.raises(TypeError, match="eviction must be None"):
        run(CONFIGS[0], 42)


def test_names_select_builtin_policies_on_every_tier():
    report = run(CONFIGS[2], "s3fifo")
    assert report["settings"]["eviction"] == {"g1": "s3fifo", "g2": "s3fifo", "g3": "s3fifo"}
    assert report["eviction"] == "s3fifo"
    default = run(CONFIGS[2], None)
    assert default["eviction"] == "adaptive"
    optimal = run(CONFIGS[0], "optimal")
    assert optimal["eviction"] == "optimal"
    assert optimal["blocks_hit"] >= run(CONFIGS[0], "lru")["blocks_hit"]
