"""Contract tests for csnapshot.cow: snapshots never change, and match a plain list/dict model."""

from __future__ import annotations

import collections
import copy
import gc
import json
import os
import pickle
import random
import sys
import threading
import time
import tracemalloc

import pytest

from csnapshot.cow import (
    CowDict,
    FrozenDict,
    LogView,
    PublishCell,
    SnapshotLog,
    freeze_value,
    json_default,
)

Entry = collections.namedtuple("Entry", "seq kind weight text tag")

# Sizes around the 32-entry chunk and the 1024-entry second trie level.
SIZES = [0, 1, 31, 32, 33, 63, 64, 65, 1000, 1023, 1024, 1025, 1057]


def entry(i: int, tag: str = "") -> Entry:
    return Entry(i, "noise", 1.0, f"e{i}", tag)


def check_view(view: LogView, model: list) -> None:
    """Every read operation of `view` agrees with the list `model`."""
    n = len(model)
    assert len(view) == n
    assert list(view) == model
    assert list(reversed(view)) == model[::-1]
    assert view.to_list() == model
    assert view == model and view == tuple(model)
    for i in {0, 1, 30, 31, 32, 33, n // 2, n - 33, n - 32, n - 31, n - 1}:
        if 0 <= i < n:
            assert view[i] == model[i]
            assert view[i - n] == model[i]
    for k in (0, 1, 5, 31, 32, 33, n, n + 7):
        assert view.last(k) == (model[-k:] if k else [])
        assert view.to_list(limit=k) == (model[-k:] if k else [])
    for s in (slice(None), slice(3, 40), slice(-33, None), slice(None, None, -1),
              slice(1, n, 7), slice(31, 33), slice(n, n + 5), slice(-1000, -1)):
        assert view[s] == model[s], s
    with pytest.raises(IndexError, match=f"index {n} out of range"):
        view[n]
    with pytest.raises(IndexError):
        view[-n - 1]


def build(n: int, maxlen: int | None = None, *, bulk: bool = False) -> tuple[SnapshotLog, list]:
    log: SnapshotLog = SnapshotLog(maxlen or max(n, 1))
    model = [entry(i) for i in range(n)]
    if bulk:
        log.extend(model)
    else:
        for e in model:
            log.append(e)
    return log, model[-(maxlen or max(n, 1)):] if n else []


# ---- LogView reads ---------------------------------------------------------

@pytest.mark.parametrize("n,maxlen", [(0, None), (1, None), (31, None), (32, None), (33, None),
                                      (1000, None), (1000, 77), (5000, 1000), (64, 40)])
def test_chunks_are_the_entries_in_order_and_whole_chunks_keep_their_identity(n, maxlen):
    log, model = build(n, maxlen)
    before = log.view()
    chunks = list(before.chunks())
    assert [e for c in chunks for e in c] == model
    assert all(isinstance(c, tuple) and 0 < len(c) <= 32 for c in chunks)
    log.append(entry(n))          # a tick later: the whole chunks still held are the same tuples
    after = list(log.view().chunks())
    assert [e for c in after for e in c] == (model + [entry(n)])[-log.maxlen:]
    # At most one whole chunk (the oldest, trimmed) is not carried over as the same object.
    kept = {id(c) for c in after if len(c) == 32}
    whole_before = [c for c in chunks if len(c) == 32]
    assert sum(id(c) in kept for c in whole_before) >= len(whole_before) - 1


@pytest.mark.parametrize("n,maxlen,added", [(0, 10, 0), (0, 10, 3), (5, 10, 4), (9, 10, 5),
                                            (100, 40, 1), (100, 40, 39), (100, 40, 40),
                                            (100, 40, 100), (1000, 1000, 33), (2000, 64, 7)])
def test_appended_since_replays_a_view_into_a_replica_of_the_same_maxlen(n, maxlen, added):
    log, _ = build(n, maxlen)
    older = log.view()
    for i in range(added):
        log.append(entry(n + i))
    newer = log.view()
    appended = newer.appended_since(older)
    assert appended == [entry(n + i) for i in range(added)][-len(newer):] if added else \
        appended == []
    replica = SnapshotLog(maxlen, older)   # a follower holding `older`, given what was appended
    replica.extend(appended)
    assert replica.view() == newer
    assert older.appended_since(newer) is None or added == 0   # never backwards


@pytest.mark.parametrize("edit", ["replace", "remove_if", "transform", "clear", "extend_all"])
def test_appended_since_is_none_after_any_other_edit(edit):
    log, _ = build(100, 40)
    older = log.view()
    log.append(entry(100))
    if edit == "replace":
        log.replace(-5, entry(-1))
    elif edit == "remove_if":
        log.remove_if(lambda e: e.seq % 7 == 0)
    elif edit == "transform":
        log.transform(lambda e: e._replace(weight=0.5))
    elif edit == "clear":
        log.clear()
    else:
        log.extend(entry(1000 + i) for i in range(40))
    assert log.view().appended_since(older) is None
    # From the edited view on, appends are followed again.
    edited = log.view()
    log.append(entry(2000))
    assert log.view().appended_since(edited) == [entry(2000)]


def test_appended_since_is_none_across_logs_and_renumberings():
    a, _ = build(10, 20)
    b, _ = build(10, 20)
    assert a.view().appended_since(b.view()) is None
    assert a.view().appended_since(LogView(a.view())) is None
    assert a.view().appended_since(object()) is None  # type: ignore[arg-type]
    # A long run renumbers its entries now and then (a reset that keeps the trie shallow):
    # each time, one view is not comparable with its predecessor, and never a wrong answer.
    log = SnapshotLog(8)
    prev, model, unanswered = log.view(), [], 0
    for i in range(5000):
        log.append(entry(i))
        model.append(entry(i))
        view = log.view()
        got = view.appended_since(prev)
        if got is None:
            unanswered += 1
        else:
            assert got == [entry(i)]
        prev = view
    assert view == model[-8:]
    assert 1 <= unanswered <= 10, unanswered


@pytest.mark.parametrize("bulk", [False, True], ids=["append", "extend"])
@pytest.mark.parametrize("n", SIZES)
def test_view_reads_match_list(n: int, bulk: bool) -> None:
    log, model = build(n, bulk=bulk)
    check_view(log.view(), model)
    assert len(log) == n and list(log) == model
    if n:
        assert log[0] == model[0] and log[-1] == model[-1] and log[1:4] == model[1:4]


@pytest.mark.parametrize("maxlen", [1, 5, 31, 32, 33, 100, 1000])
def test_view_after_wraparound_eviction(maxlen: int) -> None:
    log, model = build(maxlen * 3 + 17, maxlen)
    assert len(log) == maxlen
    check_view(log.view(), model)


def test_logview_constructor_and_empty() -> None:
    check_view(LogView(), [])
    check_view(LogView(range(1100)), list(range(1100)))


def test_index_type_errors() -> None:
    view = LogView(range(10))
    with pytest.raises(TypeError):
        view[1.0]  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="-1"):
        view.last(-1)


# ---- snapshots never change ------------------------------------------------

def test_views_unchanged_by_100k_later_writes() -> None:
    rng = random.Random(1)
    log: SnapshotLog = SnapshotLog(1000)
    cow: CowDict = CowDict({"a": 1})
    taken: list[tuple[LogView, list, FrozenDict, dict]] = []
    for i in range(100_000):
        log.append(entry(i))
        cow[f"k{i % 50}"] = i
        if i % 7 == 0 and len(log) > 1:
            log.replace(rng.randrange(len(log)), entry(-i, "r"))
        if i % 997 == 0:
            if "a" in cow:
                del cow["a"]
            else:
                cow.update(a=i)
        if i % 20_011 == 0:
            log.clear()
        if i % 30_011 == 0:
            log.remove_if(lambda e: e.seq % 3 == 0)
        if i % 5003 == 0:
            log.transform(lambda e: e._replace(weight=e.weight * 0.99))
        if i % 1009 == 0:
            v, f = log.view(), cow.freeze()
            taken.append((v, list(v), f, dict(f)))
    assert len(taken) > 90
    for v, lst, f, d in taken:
        assert v.to_list() == lst and list(v) == lst and len(v) == len(lst)
        assert f == d and len(f) == len(d)


def test_replace_after_view_changes_only_later_views() -> None:
    log, model = build(100)
    before = log.view()
    log.replace(0, entry(-1))      # in the trie
    log.replace(-1, entry(-2))     # in the tail
    log.replace(50, entry(-3))
    check_view(before, model)
    assert log.view()[0] == entry(-1) and log.view()[-1] == entry(-2) and log[50] == entry(-3)
    with pytest.raises(IndexError, match="index 100 out of range"):
        log.replace(100, entry(0))
    with pytest.raises(IndexError):
        log.replace(-101, entry(0))


def test_remove_if_and_transform() -> None:
    log, model = build(200, 150)
    v = log.view()
    assert log.remove_if(lambda e: e.seq % 3 == 0) == 50
    assert log[:] == [e for e in model if e.seq % 3]
    assert log.remove_if(lambda e: False) == 0
    log.transform(lambda e: e._replace(tag="t"))
    assert all(e.tag == "t" for e in log)
    check_view(v, model)
    log.clear()
    assert len(log) == 0 and list(log.view()) == []
    log.append(entry(7))
    assert log[:] == [entry(7)]


def test_extend_itself_and_longer_than_maxlen() -> None:
    log, model = build(40, 50)
    log.extend(log)  # the log iterates a view of itself: no deadlock, no change while reading
    assert log[:] == (model + model)[-50:]
    log.extend(entry(i) for i in range(500))
    assert log[:] == [entry(i) for i in range(450, 500)]


def test_view_is_cached_and_shares_nodes() -> None:
    log, _ = build(10_000)
    v1 = log.view()
    assert log.view() is v1  # nothing changed: same object
    log.append(entry(1))
    v2 = log.view()
    assert v2 is not v1
    assert v2._s[0] is v1._s[0]  # same trie root: nothing was copied


def test_view_does_not_copy() -> None:
    log, _ = build(100_000, bulk=True)
    log.append(entry(1))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        view = log.view()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(view) == 100_000
    assert grown < 2000, f"view() of 100k entries allocated {grown} bytes"


def test_trie_depth_stays_bounded() -> None:
    log: SnapshotLog = SnapshotLog(50)
    for i in range(200_000):
        log.append(i)
    # 50 live entries need at most one inner level; renumbering keeps it there.
    assert log._shift <= 10, log._shift
    assert list(log) == list(range(199_950, 200_000))


# ---- read-only snapshots ---------------------------------------------------

def test_view_cannot_be_mutated() -> None:
    view = LogView([1, 2, 3])
    with pytest.raises(TypeError, match="LogView"):
        view[0] = 5  # type: ignore[index]
    with pytest.raises(TypeError, match="LogView"):
        del view[0]  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="LogView is immutable"):
        view._s = ()  # type: ignore[misc, assignment]
    with pytest.raises(TypeError, match="LogView is immutable"):
        del view._s
    with pytest.raises(AttributeError):
        view.append(4)  # type: ignore[attr-defined]
    assert view == [1, 2, 3]


@pytest.mark.parametrize("mutate", [
    lambda d: d.__setitem__("a", 2), lambda d: d.__delitem__("a"), lambda d: d.clear(),
    lambda d: d.pop("a"), lambda d: d.popitem(), lambda d: d.setdefault("z", 1),
    lambda d: d.update(z=1), lambda d: d.__ior__({"z": 1}),
], ids=["setitem", "delitem", "clear", "pop", "popitem", "setdefault", "update", "ior"])
def test_frozen_dict_cannot_be_mutated(mutate) -> None:
    cow: CowDict = CowDict({"a": 1})
    frozen = cow.freeze()
    with pytest.raises(TypeError, match="FrozenDict is read-only"):
        mutate(frozen)
    frozen.__init__(z=3)  # type: ignore[misc]  # a second __init__ must not add items either
    assert frozen == {"a": 1}


def test_frozen_dict_plain_behaviour() -> None:
    frozen: FrozenDict[str, int] = FrozenDict({"a": 1}, b=2)
    assert isinstance(frozen, dict) and frozen == {"a": 1, "b": 2}
    assert type(frozen | {"c": 3}) is dict and type(frozen.copy()) is dict
    assert copy.copy(frozen) is frozen
    assert pickle.loads(pickle.dumps(frozen)) == frozen
    assert type(copy.deepcopy(frozen)) is FrozenDict
    assert FrozenDict.fromkeys("ab", 0) == {"a": 0, "b": 0}
    assert pickle.loads(pickle.dumps(LogView(range(40)))) == list(range(40))


def test_json_dumps_matches_plain() -> None:
    cow: CowDict = CowDict({"x": 1.5, "n": None, "s": "é"})
    cow["nested"] = freeze_value({"l": [1, {"k": [2, 3]}], "t": (4,)})
    frozen = cow.freeze()
    plain = {"x": 1.5, "n": None, "s": "é", "nested": {"l": [1, {"k": [2, 3]}], "t": [4]}}
    assert json.dumps(frozen, sort_keys=True) == json.dumps(plain, sort_keys=True)
    for n in (0, 1, 33, 1025):
        log, model = build(n)
        view = log.view()
        assert json.dumps(view.to_list()) == json.dumps(model)
        assert json.dumps({"m": view, "d": frozen}, default=json_default) == \
            json.dumps({"m": model, "d": plain})
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        json.dumps(object(), default=json_default)


# ---- CowDict ---------------------------------------------------------------

def test_cowdict_copies_only_on_first_write_after_freeze() -> None:
    cow: CowDict = CowDict({"a": 1})
    f1 = cow.freeze()
    assert cow.freeze() is f1  # no write: same dict
    cow["b"] = 2
    f2 = cow.freeze()
    assert f2 is not f1 and f1 == {"a": 1} and f2 == {"a": 1, "b": 2}
    cow["c"] = 3
    cow["d"] = 4
    f3 = cow.freeze()
    cow["a"] = 1  # the same object again: no change, no copy
    assert cow.freeze() is f3
    assert f2 == {"a": 1, "b": 2}


def test_cowdict_mapping_api() -> None:
    cow: CowDict = CowDict([("a", 1)])
    frozen = cow.freeze()
    assert cow.setdefault("a", 9) == 1 and cow.setdefault("b", 2) == 2
    assert cow.pop("b") == 2 and cow.pop("zz", None) is None
    with pytest.raises(KeyError):
        cow.pop("zz")
    with pytest.raises(KeyError):
        del cow["zz"]
    cow.update({"x": 1}, y=2)
    cow.update(cow)  # updating from itself is fine
    assert dict(cow) == {"a": 1, "x": 1, "y": 2} and cow == {"a": 1, "x": 1, "y": 2}
    assert sorted(cow.keys()) == ["a", "x", "y"] and cow.get("q", 5) == 5 and "x" in cow
    assert cow.popitem() == ("y", 2)
    before_clear = cow.freeze()
    cow.clear()
    assert len(cow) == 0 and before_clear == {"a": 1, "x": 1}
    cow["n"] = 1
    cow.clear()  # not frozen since: cleared in place
    assert len(cow) == 0 and before_clear == {"a": 1, "x": 1}
    with pytest.raises(KeyError):
        cow.popitem()
    assert frozen == {"a": 1}


def test_freeze_value() -> None:
    raw = {"l": [1, [2]], "d": {"k": {"z"}}, "t": (1, [2]), "nt": Entry(1, "a", 1.0, "x", [1])}
    frozen = freeze_value(raw)
    assert frozen == {"l": (1, (2,)), "d": {"k": frozenset({"z"})}, "t": (1, (2,)),
                      "nt": Entry(1, "a", 1.0, "x", (1,))}
    assert type(frozen) is FrozenDict and type(frozen["d"]) is FrozenDict
    assert type(frozen["nt"]) is Entry
    assert freeze_value(frozen) is frozen  # already frozen: nothing rebuilt
    t = (1, "a", None)
    assert freeze_value(t) is t
    cow: CowDict = CowDict({"a": 1})
    assert freeze_value(cow) is cow.freeze()
    log, model = build(3)
    assert freeze_value(log) == model


# ---- bad input -------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", None, True])
def test_bad_maxlen(bad: object) -> None:
    with pytest.raises(ValueError, match=f"positive int, got {bad!r}"):
        SnapshotLog(bad)  # type: ignore[arg-type]


def test_index_out_of_range() -> None:
    log: SnapshotLog = SnapshotLog(5)
    with pytest.raises(IndexError, match="index 0 out of range for a log of 0"):
        log[0]
    log.append(1)
    with pytest.raises(IndexError, match="index -2"):
        log[-2]


# ---- randomized model test -------------------------------------------------

def test_random_ops_against_list_model() -> None:
    seed = int(os.environ.get("CSNAPSHOT_SEED", random.randrange(2**32)))
    print(f"test_random_ops_against_list_model seed={seed} (rerun: CSNAPSHOT_SEED={seed})")
    rng = random.Random(seed)
    for maxlen in (1, 3, 31, 32, 33, 100, 700):
        log: SnapshotLog = SnapshotLog(maxlen)
        model: list = []
        taken: list[tuple[LogView, list]] = []
        for step in range(4000):
            op = rng.random()
            if op < 0.6:
                e = (step, rng.random())
                log.append(e)
                model = (model + [e])[-maxlen:]
            elif op < 0.75 and model:
                i = rng.randrange(-len(model), len(model))
                log.replace(i, (step, "r"))
                model[i] = (step, "r")
            elif op < 0.8:
                es = [(step, k) for k in range(rng.randrange(0, 2 * maxlen + 2))]
                log.extend(es)
                model = (model + es)[-maxlen:]
            elif op < 0.81:
                log.clear()
                model = []
            elif op < 0.82:
                m = rng.randrange(2, 5)
                log.remove_if(lambda e: e[0] % m == 0)
                model = [e for e in model if e[0] % m]
            else:
                taken.append((log.view(), list(model)))
            assert len(log) == len(model), (seed, maxlen, step)
        for view, expected in taken:
            assert view.to_list() == expected, (seed, maxlen)
        for view, expected in taken[:: max(1, len(taken) // 20)]:
            check_view(view, expected)


# ---- PublishCell -----------------------------------------------------------

def test_publish_cell_versions() -> None:
    cell: PublishCell = PublishCell("init")
    assert cell.latest() == (0, "init") and cell.version == 0 and cell.get() == "init"
    for i in range(1, 101):
        assert cell.publish(i) == i
        assert cell.latest() == (i, i) and cell.version == i and cell.get() == i
    assert PublishCell().latest() == (0, None)


def test_publish_cell_wait_newer() -> None:
    cell: PublishCell = PublishCell()
    cell.publish("a")
    assert cell.wait_newer(0) == (1, "a")  # already newer: returns at once
    assert cell.wait_newer(1, timeout=0.01) == (1, "a")  # timed out: version not newer
    started = threading.Event()

    def publisher() -> None:
        started.wait()
        cell.publish("b")

    t = threading.Thread(target=publisher)
    t.start()
    started.set()
    assert cell.wait_newer(1, timeout=30) == (2, "b")
    t.join()


# ---- concurrency -----------------------------------------------------------

def test_concurrent_readers_see_consistent_snapshots() -> None:
    """One writer appends/replaces/publishes; 3 readers check every snapshot they take."""
    maxlen = 100
    log: SnapshotLog = SnapshotLog(maxlen)
    cow: CowDict = CowDict({"counter": 0})
    cell: PublishCell = PublishCell((log.view(), cow.freeze(), 0))
    stop = threading.Event()
    reads = [0] * 3
    bad: list[str] = []
    writes = [0]

    def writer() -> None:
        deadline = time.monotonic() + 0.5
        i = 0
        try:
            while time.monotonic() < deadline or i < 2000:
                i += 1
                log.append((i, "a"))
                if i % 3 == 0:  # rewrite an older entry: same number, new tag
                    log.replace(len(log) // 2, (log[len(log) // 2][0], "r"))
                cow["counter"] = i
                cow["last"] = log[-1]
                if cell.publish((log.view(), cow.freeze(), i)) != i:
                    bad.append(f"version != counter at {i}")
            writes[0] = i
        finally:
            stop.set()

    def reader(k: int) -> None:
        while not stop.is_set():
            version, (view, frozen, counter) = cell.latest()
            reads[k] += 1
            n = len(view)
            if not (version == counter == frozen["counter"] and n == min(counter, maxlen)):
                bad.append(f"torn: version={version} counter={counter} dict={dict(frozen)} len={n}")
                continue
            if counter and not (view[-1] == frozen["last"] and view[-1][0] == counter):
                bad.append(f"last entry {view[-1]} != {frozen['last']} at {counter}")
            if [e[0] for e in view] != list(range(counter - n + 1, counter + 1)):
                bad.append(f"entries not consecutive at {counter}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=writer))
    # On a GIL build, switch threads as often as possible so that a reader
    # lands between any two of the writer's bytecodes.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads)
    print(f"writes={writes[0]} reads={reads} inconsistent={len(bad)}")
    assert sum(reads) > 0 and writes[0] >= 2000
    assert bad == []


def test_two_writers_do_not_corrupt() -> None:
    """One writer is the contract, but a second one must not lose or mangle anything."""
    log: SnapshotLog = SnapshotLog(100_000, [("sentinel", -1)])
    small: SnapshotLog = SnapshotLog(50)
    cow: CowDict = CowDict()
    count = 20_000
    go = threading.Event()
    taken: list[tuple[object, object]] = []

    def writer(w: int) -> None:
        go.wait()
        for i in range(count):
            log.append((w, i))
            small.append((w, i))
            cow[(w, i % 100)] = i
            if i % 10 == 0:
                log.replace(0, ("sentinel", i))
                view, frozen = small.view(), cow.freeze()
                taken.append((view, list(view)))
                taken.append((frozen, dict(frozen)))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    entries = log.view().to_list()
    assert len(entries) == 2 * count + 1 and len(log) == 2 * count + 1
    assert entries[0][0] == "sentinel"
    for w in range(2):
        assert [i for (x, i) in entries if x == w] == list(range(count))
    tail = small.view().to_list()
    assert len(tail) == 50
    for w in range(2):
        mine = [i for (x, i) in tail if x == w]  # the last few of this writer's appends
        assert mine == list(range(count - len(mine), count))
    assert all(snapshot == copied for snapshot, copied in taken)
    assert dict(cow.freeze()) == {(w, k): count - 100 + k for w in range(2) for k in range(100)}
