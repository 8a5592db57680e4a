"""bench/serve: the ranking service, k=20 out of 500 candidates, next to bare XGBoost.

Setup (not measured): a synthetic serving home with a published feature bundle the size of a
mid-sized shop (``--users`` 100,000 users with 5 category and 5 brand affinities each, 10
user x item pairs each, ``--items`` 20,000 items in 50 categories and 200 brands, 10 regions)
and a champion: an XGBoost model with the production parameters (``DEFAULT_PARAMS``, depth 4)
and a fixed ``--rounds`` (default 500; the pipeline's early stopping allows up to 1,000) on the
production feature schema (44 numeric, 4 categorical features).

Then, in one run, each over the same 500-candidate requests of random users:
  - bare: ``booster.inplace_predict`` on the request's 500 x 48 float32 matrix, built before
    the timing (what scoring alone costs; the floor);
  - service in process: ``RankingService.rank`` (pseudonymise the user, assemble the features
    from the bundle, predict, sample the epsilon-greedy slate with propensities, log 20
    impressions to a landing file) without HTTP;
  - HTTP, one client: ``flywheel serve`` (uvicorn, 1 worker) in its own process, one
    keep-alive client sending requests one after another (latency);
  - HTTP, 4 clients: the same server, 4 client threads (throughput; client and server share
    the 2 cores).
Reported: p50/p99 latency in ms and requests/s; ratios of the service to bare in the same run.
Goal (issue 9): p99 over HTTP at most 10 ms on 2 cores. Also the bundle's load time (what a hot
reload costs) and the memory it takes.

    .venv/bin/python bench/serve.py                    # ~2 minutes
    .venv/bin/python bench/serve.py --requests 500     # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
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
from flywheel_assets.serving.online_features import SUCCESS, FeatureSnapshot  # noqa: E402
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
    (bundle / SUCCESS).write_text(json.dumps({"feature_dt": FEATURE_DT.isoformat(), "rows": rows}))
    return {
        "rows": rows,
        "categories": cats,
        "brands": brands,
        "regions": regions,
        "bundle": bundle,
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1, help="flywheel serve --workers")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    home = work / "home"
    (home / "serving").mkdir(parents=True)
    log(f"building a bundle of {args.users:,} users and {args.items:,} items in {work}")
    info = build_bundle(home / "serving", args.users, args.items, rng)
    log(f"training the champion ({args.rounds} rounds)")
    champion = train_champion(home, info, args.rounds, rng)

    # hot-reload cost: load the bundle as the service does, and the memory it takes
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    snap = FeatureSnapshot.load(info["bundle"])
    load_s = time.perf_counter() - t0
    rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024

    requests = [
        (f"u{int(rng.integers(args.users))}",
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

    log("bare inplace_predict")
    lat = []
    for x in matrices:
        t = time.perf_counter()
        booster.inplace_predict(x)
        lat.append((time.perf_counter() - t) * 1000)
    results["bare inplace_predict"] = {"lat": lat, "rps": 1000 / np.mean(lat)}

    log("service in process")
    svc = RankingService(home / "serving", pseudo, LandingSink(work / "landing"), seed=0)
    svc.reload(force=True)
    lat = []
    for u, c in requests:
        t = time.perf_counter()
        svc.rank(u, k=args.k, candidates=c)
        lat.append((time.perf_counter() - t) * 1000)
    svc.sink.close()
    results["service, in process"] = {"lat": lat, "rps": 1000 / np.mean(lat)}

    import httpx

    port = free_port()
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "FLYWHEEL_PSEUDONYM_KEY": KEY,
           "FLYWHEEL_LANDING_DIR": str(work / "landing-http")}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "flywheel_assets.cli", "serve", "--port", str(port),
         "--log-level", "warning", "--workers", str(args.workers)],
        env=env,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, 120, alive=lambda: server.poll() is None)
        bodies = [{"user_id": u, "k": args.k, "candidates": c} for u, c in requests]
        log("HTTP, one client")
        with httpx.Client(base_url=url) as client:
            for b in bodies[:100]:  # warm-up
                client.post("/rank", json=b)
            lat = []
            t_all = time.perf_counter()
            for b in bodies:
                t = time.perf_counter()
                r = client.post("/rank", json=b)
                lat.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            results["HTTP, 1 client"] = {
                "lat": lat,
                "rps": len(bodies) / (time.perf_counter() - t_all),
            }

        log("HTTP, 4 clients")
        lat4: list[float] = []
        lock = threading.Lock()

        def client_thread(part: list[dict]) -> None:
            mine = []
            with httpx.Client(base_url=url) as client:
                for b in part:
                    t = time.perf_counter()
                    r = client.post("/rank", json=b)
                    mine.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
            with lock:
                lat4.extend(mine)

        threads = [threading.Thread(target=client_thread, args=(bodies[i::4],)) for i in range(4)]
        t_all = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        results["HTTP, 4 clients"] = {
            "lat": lat4,
            "rps": len(bodies) / (time.perf_counter() - t_all),
        }
        served = httpx.get(f"{url}/metrics").json()["latency"]
    finally:
        server.terminate()
        server.wait(30)

    bare50, bare99 = pct(results["bare inplace_predict"]["lat"])
    print(f"\n## bench/serve: k={args.k} of {args.candidates} candidates, {args.requests:,} requests each, "
          f"{args.workers} server worker(s)")  # fmt: skip
    print(f"commit {code_version()}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; python {platform.python_version()}, xgboost {xgb.__version__}")  # fmt: skip
    print(f"bundle: {args.users:,} users, {args.items:,} items, {info['rows']['user_item']:,} "
          f"user x item pairs; load {load_s:.2f} s, +{rss_mb:,.0f} MB RSS; model {args.rounds} rounds, depth 4\n")  # fmt: skip
    print("| path | p50 ms | p99 ms | requests/s | p50 / bare | p99 / bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        p50, p99 = pct(r["lat"])
        print(
            f"| {name} | {p50:.2f} | {p99:.2f} | {r['rps']:,.0f} | {p50 / bare50:.1f} | {p99 / bare99:.1f} |"
        )
    print("\nserver-side time per request (its /metrics, all HTTP requests): " + ", ".join(
        f"{v}: p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms" for v, m in served.items()))  # fmt: skip
    p99_http = pct(results["HTTP, 1 client"]["lat"])[1]
    print(
        f"\ngoal: p99 over HTTP <= 10 ms: {'met' if p99_http <= 10 else 'NOT met'} ({p99_http:.2f} ms, one client)"
    )
    print(f"reproduce: .venv/bin/python bench/serve.py --users {args.users} --items {args.items} "
          f"--rounds {args.rounds} --requests {args.requests} --workers {args.workers}")  # fmt: skip


if __name__ == "__main__":
    main()
