"""`flywheel doctor`: find runs whose worker died and the pool slots they still hold; clear them."""

from __future__ import annotations

import argparse
import json
import sys


def _instance():  # noqa: ANN202 - a DagsterInstance
    import dagster as dg
    from dagster._core.errors import DagsterHomeNotSetError

    try:
        return dg.DagsterInstance.get()
    except DagsterHomeNotSetError:
        raise SystemExit(
            "flywheel doctor: DAGSTER_HOME is not set; point it at the instance to check "
            "(a demo home's is $FLYWHEEL_HOME/dagster)"
        ) from None


def _doctor(args: argparse.Namespace) -> int:
    from flywheel_assets.orchestration.runs import reap, reap_dead, run_states

    instance = _instance()
    states = run_states(instance)
    if args.free:
        chosen = [s for s in states if s.run_id in set(args.free)]
        missing = set(args.free) - {s.run_id for s in chosen}
        if missing:
            print(
                f"flywheel doctor: no unfinished run or slot holder {', '.join(sorted(missing))}",
                file=sys.stderr,
            )
            return 2
        for s in chosen:
            print(reap(instance, s, by="flywheel doctor --free"))
        return 0
    if args.fix:
        done = reap_dead(instance, by="flywheel doctor --fix", states=states)
        for line in done:
            print(line)
        if not done:
            print("nothing to fix: no dead run holds a slot or is marked running")
        return 0
    dead = [s for s in states if s.dead]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "run_id": s.run_id,
                        "job": s.job_name,
                        "partition": s.partition,
                        "status": s.status,
                        "worker": s.worker,
                        "liveness": s.liveness.value,
                        "slots": list(s.slots),
                        "dead": s.dead,
                    }
                    for s in states
                ],
                indent=2,
            )
        )
    else:
        if not states:
            print("no run is running or holds a pool slot")
        for s in states:
            print(("DEAD  " if s.dead else "ok    ") + s.line())
        if dead:
            print(
                f"{len(dead)} dead run(s): `flywheel doctor --fix` marks them failed and frees "
                "their slots; then rerun their partitions"
            )
        unknown = [s for s in states if not s.dead and s.liveness.value == "unknown"]
        if unknown:
            print(
                "a worker on another host (or unrecorded) cannot be checked from here: if you "
                "know it is gone, `flywheel doctor --free RUN_ID`"
            )
    # 1 when something is dead, so a cron job or a probe can alert on it
    return 1 if dead else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="find runs whose worker died and the pool slots they hold; --fix clears them",
        description=(
            "Lists every run that is marked running or holds a concurrency-pool slot, and "
            "whether its worker process is alive (exit status 1 when one is dead). A run killed "
            "with SIGKILL stays 'STARTED' and keeps its slot, so later runs would wait for it. "
            "Reads the instance at $DAGSTER_HOME."
        ),
    )
    p.add_argument("--fix", action="store_true", help="mark dead runs failed and free their slots")
    p.add_argument(
        "--free",
        nargs="+",
        metavar="RUN_ID",
        help="mark these runs failed and free their slots even if they look alive (a worker "
        "on another host that you know is gone)",
    )
    p.add_argument("--json", action="store_true", help="the list as JSON")
    p.set_defaults(func=_doctor)
