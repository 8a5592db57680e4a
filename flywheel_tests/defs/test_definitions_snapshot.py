"""The definitions snapshot: a refactor that drops or changes an asset, a check's blocking
flag, a job, a schedule, a sensor or the partitions fails here, with the difference shown."""

import json

from flywheel_tests.defs.definitions_snapshot import SNAPSHOT, current, describe


def _flatten(d: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    return out


def test_definitions_match_the_snapshot() -> None:
    expected = _flatten(json.loads(SNAPSHOT.read_text()))
    actual = _flatten(current())
    changed = sorted(
        f"{k}: {expected.get(k, '<absent>')!r} -> {actual.get(k, '<absent>')!r}"
        for k in expected.keys() | actual.keys()
        if expected.get(k, "<absent>") != actual.get(k, "<absent>")
    )
    assert not changed, (
        "the definitions differ from flywheel_tests/defs/definitions_snapshot.json; if intended, "
        "run `python -m flywheel_tests.defs.definitions_snapshot --update` and review the diff:\n"
        + "\n".join(changed)
    )


def test_installed_package_loads_the_same_definitions() -> None:
    # A wheel has no pyproject.toml: the fallback loader must see exactly the same objects.
    from flywheel_assets.definitions import load_defs

    via_package = json.loads(
        json.dumps(describe(load_defs(from_project_config=False)), default=str)
    )
    assert _flatten(via_package) == _flatten(current())


def test_snapshot_covers_the_whole_cycle() -> None:
    # The snapshot itself must describe a full flywheel, not an empty or partial location.
    snap = json.loads(SNAPSHOT.read_text())
    groups = {a["group"] for a in snap["assets"].values()}
    assert {"ingestion", "quality", "features", "training", "evaluation", "promotion",
            "serving"} <= groups  # fmt: skip
    assert all(c["blocking"] for c in snap["asset_checks"].values())
    assert "daily_flywheel_cycle" in snap["schedules"]
