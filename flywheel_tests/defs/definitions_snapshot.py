"""A plain description of the code location's definitions, for the snapshot test.

``python -m flywheel_tests.defs.definitions_snapshot --update`` rewrites the snapshot after an
intended change (review the diff: it is what the UI, schedules and sensors will see).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _partitions(p: dg.PartitionsDefinition | None) -> dict[str, object] | None:
    if p is None:
        return None
    out: dict[str, object] = {"type": type(p).__name__}
    if isinstance(p, dg.TimeWindowPartitionsDefinition):
        out.update(
            cron=p.cron_schedule,
            fmt=p.fmt,
            timezone=p.timezone,
            end_offset=p.end_offset,
        )
    return out


def _mapping(m: object) -> object:
    if m is None:
        return None
    if isinstance(m, dg.TimeWindowPartitionMapping):
        return {
            "type": "TimeWindowPartitionMapping",
            "start_offset": m.start_offset,
            "end_offset": m.end_offset,
            "allow_nonexistent_upstream_partitions": m.allow_nonexistent_upstream_partitions,
        }
    return type(m).__name__


def describe(defs: dg.Definitions) -> dict[str, object]:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets: dict[str, object] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        ad = graph.assets_def_for_key(key)
        spec = next(s for s in ad.specs if s.key == key)
        retry = ad.op.retry_policy if ad.is_executable and ad.op else None
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(spec.kinds),
            "executable": ad.is_executable,
            "partitions": _partitions(node.partitions_def),
            "pool": ad.op.pool if ad.is_executable and ad.op else None,
            "backfill_policy": None
            if ad.backfill_policy is None
            else ad.backfill_policy.policy_type.value,
            "retry": None
            if retry is None
            else {"max_retries": retry.max_retries, "delay": retry.delay},
            "deps": {
                p.to_user_string(): _mapping(ad.get_partition_mapping(p))
                for p in sorted(node.parent_keys, key=lambda k: k.to_user_string())
            },
            "automation_condition": None
            if node.automation_condition is None
            else node.automation_condition.get_label() or type(node.automation_condition).__name__,
            "has_description": bool(spec.description),
        }
    checks = {}
    for ck in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        node = graph.get(ck)
        checks[f"{ck.asset_key.to_user_string()}:{ck.name}"] = {"blocking": node.blocking}
    jobs = {}
    for job in sorted(repo.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__ASSET_JOB"):
            continue
        layer = job.asset_layer
        selected = layer.selected_asset_keys
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in selected),
            "checks": sorted(
                f"{k.asset_key.to_user_string()}:{k.name}"
                for k in layer.asset_graph.asset_check_keys
                if k.asset_key in selected and job.asset_layer.has(k)
            ),
            "ops": sorted(n.name for n in job.graph.node_defs) if not selected else [],
            "executor": job.executor_def.name,
            "partitions": _partitions(job.partitions_def),
        }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "default_status": s.default_status.value,
        }
        for s in sorted(repo.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "kind": type(s).__name__,
            "default_status": s.default_status.value,
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "jobs": sorted(t.job_name for t in s.targets) if s.has_jobs else [],
        }
        for s in sorted(repo.sensor_defs, key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "asset_checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(defs.resources or {}),
    }


def current() -> dict[str, object]:
    from flywheel_assets.definitions import defs

    return json.loads(json.dumps(describe(defs()), sort_keys=True, default=str))


if __name__ == "__main__":
    if "--update" in sys.argv:
        SNAPSHOT.write_text(json.dumps(current(), indent=2, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT}")
    else:
        print(json.dumps(current(), indent=2, sort_keys=True))
