"""Property tests of the parsers of files a run or a dataset is made of (issue 22): config.yaml, meta.json and
manifest.json, random and mutated. Whatever the bytes, reading them back is either fine or one PlayworldError,
never another exception, and a refused file leaves the folder exactly as it was."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import tiny_family
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playworld.data.store import Dataset
from playworld.errors import PlayworldError
from playworld.play.loading import load_target
from playworld.train.loop import train
from playworld.train.run import prepare_run

SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["", "\x00", "tiny-test", "debug", "nan", "gym:x:Y-v0"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)


def _paths(obj, prefix=()):
    """Every key path into nested dicts/lists, up to depth 4."""
    yield prefix
    if len(prefix) < 4:
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for k, v in items:
            yield from _paths(v, (*prefix, k))


def _replace(obj, path, value, delete: bool):
    if not path:
        return value
    obj = json.loads(json.dumps(obj))  # a copy
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return obj


def mutated(valid: dict, dump) -> st.SearchStrategy[bytes]:
    """Bytes of `valid` with one value replaced or removed, bytes cut or spliced into its text, or random bytes."""
    text = dump(valid).encode()
    paths = list(_paths(valid))
    tree = st.tuples(st.sampled_from(paths), VALUES, st.booleans()).map(
        lambda t: dump(_replace(valid, *t)).encode())
    splice = st.tuples(st.integers(0, len(text)), st.integers(0, 16), st.binary(max_size=12)).map(
        lambda t: text[:t[0]] + t[2] + text[t[0] + t[1]:])
    return st.one_of(tree, splice, st.binary(max_size=200))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _expect_clean(fn, folder: Path) -> None:
    before = _snapshot(folder)
    try:
        fn()
    except PlayworldError:
        assert _snapshot(folder) == before, "a refused file left the folder changed"


def _json(obj) -> str:
    return json.dumps(obj, indent=2)


def _yaml(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


@pytest.fixture(scope="module")
def template(_trained_run):
    return _trained_run


def _fresh_run(template: Path, tmp: str) -> Path:
    run = Path(tmp) / "run"
    shutil.copytree(template, run, symlinks=True)
    return run


def test_config_yaml_random_and_mutated(template):
    valid = yaml.safe_load((template / "config.yaml").read_text())

    @settings(SETTINGS, max_examples=60)
    @given(mutated(valid, _yaml))
    def check(blob: bytes):
        with tempfile.TemporaryDirectory() as tmp:
            run = _fresh_run(template, tmp)
            (run / "config.yaml").write_bytes(blob)
            _expect_clean(lambda: prepare_run(run, None, None, None, None, None, None, True), run)
            _expect_clean(lambda: load_target(str(run)), run)

    check()


def test_meta_json_random_and_mutated(template):
    valid = json.loads((template / "meta.json").read_text())

    @settings(SETTINGS, max_examples=12)
    @given(mutated(valid, _json))
    def check(blob: bytes):
        with tempfile.TemporaryDirectory() as tmp:
            run = _fresh_run(template, tmp)
            (run / "meta.json").write_bytes(blob)
            _expect_clean(lambda: train(run, resume=True, steps=6, progress=False), run)  # 6 done: nothing to train

    check()


def test_manifest_json_random_and_mutated(tiny_data):
    valid = json.loads((tiny_data / "manifest.json").read_text())

    @settings(SETTINGS, max_examples=80)
    @given(mutated(valid, _json))
    def check(blob: bytes):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            shutil.copytree(tiny_data, data)
            (data / "manifest.json").write_bytes(blob)

            def read():
                ds = Dataset(data)
                len(ds), ds.fingerprint, ds.num_frames, ds.state_keys, ds.episode_ids("val")
                prepare_run(Path(tmp) / "run", data, tiny_family.NAME, "debug", None, None, None, False)

            _expect_clean(read, data)

    check()
