"""bench/serve: the ranking service, k=20 out of 500 candidates, next to bare XGBoost, for
growing numbers of users; the feature snapshot mapped from disk against the same snapshot
held in each replica's memory.

Setup per size (not measured): a synthetic serving home with a published feature bundle
(``--users`` N users with 5 category and 5 brand affinities each, 10 user x item pairs each,
``--items`` 20,000 items in 50 categories and 200 brands, 10 regions), written as
``online_features`` writes it (Parquet files and their ``mapped/`` form, decision 87), and a
champion: an XGBoost model with the production parameters (``DEFAULT_PARAMS``, depth 4) and a
fixed ``--rounds`` (default 500; the pipeline's early stopping allows up to 1,000) on the
production feature schema (44 numeric, 4 categorical features).

Then, per size, each over the same 500-candidate requests of random users:
  - bare: ``booster.inplace_predict`` on the request's 500 x 48 float32 matrix, built before
    the timing (what scoring alone costs; the floor);
  - service in process: ``RankingService.rank`` (pseudonymise the user, assemble the features
    from the mapped bundle, predict, sample the epsilon-greedy slate with propensities, log
    20 impressions to a landing file) without HTTP;
  - HTTP, two replicas: two ``flywheel serve`` processes (uvicorn, 1 worker each) on the same
    home, one keep-alive client sending requests one after another, alternating replicas
    (latency); then each replica's memory from /proc: ``RssAnon`` (its own), ``RssFile``
    (mapped pages it touched, shared through the page cache) and ``Pss`` (its fair share);
  - the same two replicas on a copy of the bundle without ``mapped/``, which the service
    builds in each replica's memory (the same arrays, not mapped; the snapshot of Python
    dicts served before decision 87 took more: docs/benchmarks.md has its figure).
Reported: p50/p99 latency in ms, ratios to bare in the same run, memory per replica, and how
each grows with users. Goals (issues 9 and 24): p99 over HTTP at most 10 ms on 2 cores;
memory per replica not growing with users beyond a small index.

    .venv/bin/python bench/serve.py                                 # ~15 minutes
    .venv/bin/python bench/serve.py --users 20000,50000 --requests 300   # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import code_version, log  # noqa: E402

from flywheel_assets.platform.dev_broker import free_port  # noqa: E402
from flywheel_assets.platform.pseudonym import Pseudonymiser  # noqa: E402
from flywheel_assets.serving.event_sink import LandingSink  # noqa: E402
from flywheel_assets.serving.online_features import (  # noqa: E402
    MAPPED,
    SUCCESS,
    FeatureSnapshot,
)
from flywheel_assets.serving.service import RankingService  # noqa: E402
from flywheel_assets.simulation.live_shop import wait_until_ready  # noqa: E402
from flywheel_assets.training.model import (  # noqa: E402
    DEFAULT_PARAMS,
    NUMERIC_FEATURES,
    FeatureSchema,
    model_bytes,
    save_artefact,
)

KEY = "bench-" + "k" * 58
FEATURE_DT = dt.date(2026, 11, 24)


def columns(prefix: str) -> list[str]:
    return [c for c in NUMERIC_FEATURES if c.startswith(prefix)]


def build_bundle(serving: Path, n_users: int, n_items: int, rng: np.random.Generator) -> dict:
    """Frames with the columns online_features exports (features/vector.py), as a bundle."""
    pseudo = Pseudonymiser(KEY)
    users = pseudo.series(pd.Series([f"u{i}" for i in range(n_users)])).to_numpy()
    cats = [f"c{i:02d}" for i in range(50)]
    brands = [f"b{i:03d}" for i in range(200)]
    regions = [f"r{i}" for i in range(10)]

    def block(n: int, cols: list[str]) -> dict[str, np.ndarray]:
        return {c: rng.gamma(1.0, 3.0, n) for c in cols}

    frames = {
        "items": pd.DataFrame(
            {
                "item_id": [f"i{i}" for i in range(n_items)],
                "category": rng.choice(cats, n_items),
                "brand": rng.choice(brands, n_items),
                **block(n_items, columns("i_")),
            }
        ),
        "users": pd.DataFrame(
            {
                "user_id": users,
                "region": rng.choice(regions, n_users),
                "device": rng.choice(["mobile", "desktop", "tablet"], n_users),
                **block(n_users, columns("u_")),
            }
        ),
    }
    for name, col, values, per in (
        ("user_category", "category", cats, 5),
        ("user_brand", "brand", brands, 5),
    ):
        n = n_users * per
        frame = pd.DataFrame(
            {"user_id": np.repeat(users, per), col: rng.choice(values, n),
             **block(n, columns("uc_" if col == "category" else "ub_"))}
        ).drop_duplicates(["user_id", col])  # fmt: skip
        frames[name] = frame
    n = n_users * 10
    frames["user_item"] = pd.DataFrame(
        {
            "user_id": np.repeat(users, 10),
            "item_id": [f"i{i}" for i in rng.integers(0, n_items, n)],
            **block(n, [*columns("ui_"), "ui_views_28d", "ui_days_since_last_event"]),
        }
    ).drop_duplicates(["user_id", "item_id"])
    frames["region_category"] = pd.DataFrame(
        [(r, c) for r in regions for c in cats], columns=["region", "category"]
    ).assign(**block(len(regions) * len(cats), columns("rc_")))
    frames["region_brand"] = pd.DataFrame(
        [(r, b) for r in regions for b in brands], columns=["region", "brand"]
    ).assign(**block(len(regions) * len(brands), columns("rb_")))
    bundle = serving / "features" / f"dt={FEATURE_DT}"
    bundle.mkdir(parents=True)
    for name, df in frames.items():
        df.to_parquet(bundle / f"{name}.parquet", index=False)
    rows = {k: len(v) for k, v in frames.items()}
    t0 = time.perf_counter()  # what online_features adds to the export for serving
    FeatureSnapshot.from_frames(FEATURE_DT, frames).save_mapped(bundle / MAPPED)
    compile_s = time.perf_counter() - t0
    (bundle / SUCCESS).write_text(json.dumps({"feature_dt": FEATURE_DT.isoformat(), "rows": rows}))
    return {
        "rows": rows,
        "categories": cats,
        "brands": brands,
        "regions": regions,
        "bundle": bundle,
        "compile_s": compile_s,
    }


def train_champion(
    home: Path,
    info: dict,
    rounds: int,
    rng: np.random.Generator,
    numeric: list[str] | None = None,
    version: str = "bench-champion",
) -> dict:
    """An XGBoost champion on ``numeric`` (default: the production schema's) and the
    categoricals, published as the serving pointer."""
    numeric = list(NUMERIC_FEATURES) if numeric is None else numeric
    schema = FeatureSchema(
        numeric=numeric,
        categorical={
            "region": info["regions"],
            "device": ["desktop", "mobile", "tablet"],
            "category": info["categories"],
            "brand": info["brands"],
        },
    )
    n = 50_000
    df = pd.DataFrame({c: rng.gamma(1.0, 3.0, n) for c in numeric})
    for c, values in schema.categorical.items():
        df[c] = rng.choice(values, n)
    signal = df["u_ctr_28d"] * 0.2 - df["i_price"] * 0.1 + (df["category"] < "c10") * 1.0
    y = (signal + rng.normal(0, 1, n) > 1.0).astype(int)
    params = {**DEFAULT_PARAMS, "nthread": 2}
    booster = xgb.train(params, xgb.DMatrix(schema.matrix(df), y, enable_categorical=True), rounds)
    uri, sha = save_artefact(model_bytes(booster), home / "models", version)
    pointer = {
        "model_version": version,
        "artefact_uri": uri,
        "sha256": sha,
        "training_partitions": [],
        "feature_schema": json.loads(schema.to_json()),
        "experiment": None,
    }
    (home / "serving" / "champion.json").write_text(json.dumps(pointer))
    return {"schema": schema, "booster": booster}


def pct(values: list[float]) -> tuple[float, float]:
    a = np.array(values)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def memory_mb(pid: int, bundle: Path) -> dict[str, float]:
    """A process's resident memory from /proc: its own (RssAnon), mapped files it touched
    (RssFile: libraries and the bundle, shared through the page cache), the bundle's pages
    alone, and its proportional share of all (Pss)."""
    out = {"bundle": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            out["Pss"] = int(line.split()[1]) / 1024
    in_bundle = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=5)
        if "-" in first[0] and not first[0].endswith(":"):  # a mapping's header line
            in_bundle = len(first) == 6 and first[5].startswith(str(bundle))
        elif in_bundle and first[0] == "Rss:":
            out["bundle"] += int(first[1]) / 1024
    return out


def memory_copy(home: Path, work: Path) -> Path:
    """A second home serving the same bundle without its mapped form: the service builds
    that snapshot in memory (as every bundle was served before decision 87)."""
    other = work / "home-memory"
    (other / "serving").mkdir(parents=True)
    (other / "models").symlink_to(home / "models")
    (other / "serving" / "champion.json").write_bytes(
        (home / "serving" / "champion.json").read_bytes()
    )
    src = home / "serving" / "features" / f"dt={FEATURE_DT}"
    dst = other / "serving" / "features" / src.name
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).symlink_to(f)
    return other


def http_replicas(home: Path, work: Path, name: str, requests: list, k: int) -> dict:
    """Two ``flywheel serve`` replicas on ``home``; one client alternating between them.
    Returns the client's latencies, the time to ready, and each replica's memory."""
    import httpx

    procs, urls = [], []
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "FLYWHEEL_PSEUDONYM_KEY": KEY,
           "FLYWHEEL_LANDING_DIR": str(work / f"landing-{name}")}  # fmt: skip
    t0 = time.perf_counter()
    try:
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "flywheel_assets.cli", "serve", "--port", str(port),
                 "--log-level", "warning"], env=env))  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_until_ready(url, 900, alive=lambda p=proc: p.poll() is None)
        ready_s = time.perf_counter() - t0
        bodies = [{"user_id": u, "k": k, "candidates": c} for u, c in requests]
        clients = [httpx.Client(base_url=u) for u in urls]
        try:
            for n, b in enumerate(bodies[:100]):  # warm-up
                clients[n % 2].post("/rank", json=b)
            lat = []
            for n, b in enumerate(bodies):
                t = time.perf_counter()
                r = clients[n % 2].post("/rank", json=b)
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            served = clients[0].get("/metrics").json()["latency"]
        finally:
            for c in clients:
                c.close()
        bundle = (home / "serving" / "features").resolve()
        memory = [memory_mb(p.pid, bundle) for p in procs]
        return {"lat": lat, "ready_s": ready_s, "memory": memory,
                "server": served}  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def run_size(args: argparse.Namespace, n_users: int, rng: np.random.Generator) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-serve-{n_users}-"))
    home = work / "home"
    (home / "serving").mkdir(parents=True)
    log(f"[{n_users:,} users] building the bundle in {work}")
    info = build_bundle(home / "serving", n_users, args.items, rng)
    log(f"[{n_users:,} users] training the champion ({args.rounds} rounds)")
    champion = train_champion(home, info, args.rounds, rng)
    disk_mb = sum(f.stat().st_size for f in (info["bundle"] / MAPPED).iterdir()) / 2**20

    t0 = time.perf_counter()
    snap = FeatureSnapshot.load(info["bundle"])
    mapped_load_s = time.perf_counter() - t0
    assert snap.mapped
    requests = [
        (f"u{int(rng.integers(n_users))}",
         [f"i{i}" for i in rng.choice(args.items, args.candidates, replace=False)])
        for _ in range(args.requests)
    ]  # fmt: skip
    pseudo = Pseudonymiser(KEY)
    now = dt.datetime(2026, 11, 25, 12, 0)
    matrices = [
        snap.matrix(champion["schema"], pseudo.one(u), snap.item_codes(c), now) for u, c in requests
    ]
    booster = champion["booster"]
    booster.set_param({"nthread": 1})
    results: dict[str, dict] = {}
    log(f"[{n_users:,} users] bare inplace_predict")
    lat = []
    for x in matrices:
        t = time.perf_counter()
        booster.inplace_predict(x)
        lat.append((time.perf_counter() - t) * 1000)
    results["bare inplace_predict"] = {"lat": lat}

    log(f"[{n_users:,} users] service in process (mapped)")
    svc = RankingService(home / "serving", pseudo, LandingSink(work / "landing"), seed=0)
    svc.reload(force=True)
    lat = []
    for u, c in requests:
        t = time.perf_counter()
        svc.rank(u, k=args.k, candidates=c)
        lat.append((time.perf_counter() - t) * 1000)
    svc.sink.close()
    results["service in process, mapped"] = {"lat": lat}
    del svc, snap, matrices

    log(f"[{n_users:,} users] HTTP, two replicas, mapped")
    results["HTTP, mapped"] = http_replicas(home, work, "mapped", requests, args.k)
    if n_users <= args.memory_max:
        log(f"[{n_users:,} users] HTTP, two replicas, snapshot in memory")
        other = memory_copy(home, work)
        results["HTTP, in memory"] = http_replicas(other, work, "memory", requests, args.k)
    shutil.rmtree(work, ignore_errors=True)
    return {"users": n_users, "rows": info["rows"], "results": results, "disk_mb": disk_mb,
            "mapped_load_s": mapped_load_s, "compile_s": info["compile_s"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", default="100000,300000,1000000", help="sizes, comma-separated")
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument(
        "--memory-max", type=int, default=1_000_000,
        help="largest size at which to also serve the snapshot from memory",
    )  # fmt: skip
    args = ap.parse_args()
    sizes = [int(s) for s in args.users.split(",")]
    runs = [run_size(args, n, np.random.default_rng(0)) for n in sizes]

    print(f"\n## bench/serve: k={args.k} of {args.candidates} candidates, {args.requests:,} "
          f"requests per path, {args.items:,} items, model {args.rounds} rounds, depth 4")  # fmt: skip
    print(f"commit {code_version()}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; python {platform.python_version()}, xgboost {xgb.__version__}\n")  # fmt: skip
    print("| users | user x item pairs | path | p50 ms | p99 ms | p50 / bare | p99 / bare |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for run in runs:
        bare50, bare99 = pct(run["results"]["bare inplace_predict"]["lat"])
        for name, r in run["results"].items():
            p50, p99 = pct(r["lat"])
            print(f"| {run['users']:,} | {run['rows']['user_item']:,} | {name} | {p50:.2f} | "
                  f"{p99:.2f} | {p50 / bare50:.2f} | {p99 / bare99:.2f} |")  # fmt: skip
    print("\nMemory per replica after the requests (MB; two replicas on one host, the mean):\n")
    print("| users | snapshot | RssAnon (own) | RssFile (shared) | of which the bundle | Pss "
          "| time to ready s |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|")
    for run in runs:
        for name in ("HTTP, mapped", "HTTP, in memory"):
            r = run["results"].get(name)
            if r is None:
                continue
            m = {k: np.mean([x[k] for x in r["memory"]]) for k in r["memory"][0]}
            print(f"| {run['users']:,} | {name.split(', ')[1]} | {m['RssAnon']:,.0f} | "
                  f"{m['RssFile']:,.0f} | {m['bundle']:,.0f} | {m['Pss']:,.0f} | "
                  f"{r['ready_s']:.1f} |")  # fmt: skip
    print("\nThe mapped form: size on disk, time to write it (online_features), time to map it:\n")
    print("| users | mapped/ MB | compile s | map s |")
    print("|---:|---:|---:|---:|")
    for run in runs:
        print(f"| {run['users']:,} | {run['disk_mb']:,.0f} | {run['compile_s']:.1f} | "
              f"{run['mapped_load_s']:.3f} |")  # fmt: skip
    if len(runs) > 1:
        first, last = runs[0], runs[-1]

        def anon(run: dict, name: str) -> float:
            return float(np.mean([x["RssAnon"] for x in run["results"][name]["memory"]]))

        growth = last["users"] / first["users"]
        print(f"\ngrowth {first['users']:,} -> {last['users']:,} users ({growth:.0f}x): "
              f"mapped replica's own memory {anon(first, 'HTTP, mapped'):,.0f} -> "
              f"{anon(last, 'HTTP, mapped'):,.0f} MB; p99 over HTTP "
              f"{pct(first['results']['HTTP, mapped']['lat'])[1]:.2f} -> "
              f"{pct(last['results']['HTTP, mapped']['lat'])[1]:.2f} ms")  # fmt: skip
        if "HTTP, in memory" in last["results"]:
            print(f"in memory: {anon(first, 'HTTP, in memory'):,.0f} -> "
                  f"{anon(last, 'HTTP, in memory'):,.0f} MB per replica")  # fmt: skip
    p99_http = max(pct(r["results"]["HTTP, mapped"]["lat"])[1] for r in runs)
    print(f"\ngoal: p99 over HTTP <= 10 ms at every size: "
          f"{'met' if p99_http <= 10 else 'NOT met'} (worst {p99_http:.2f} ms)")  # fmt: skip
    print(f"reproduce: .venv/bin/python bench/serve.py --users {args.users} --items {args.items} "
          f"--rounds {args.rounds} --requests {args.requests} --memory-max {args.memory_max}")  # fmt: skip


if __name__ == "__main__":
    main()
