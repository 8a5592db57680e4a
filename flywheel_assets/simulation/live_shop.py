"""``flywheel simulate --url``: the shop simulator as live traffic against a running ranking
service, so the whole loop runs as in production (``dagster dev`` + ``flywheel serve`` +
simulated shoppers).

Each simulated day: the shop's catalog and users exports go to the landing folder (for today's
partition, the day the service's logs land in), every request is ranked by the service over
HTTP (which logs the impressions), the simulated users react to what was shown, and their
clicks, carts and purchases are posted to ``/events`` (which logs them). Nothing is written
behind the service's back: the next cycle learns from what the service logged.
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from flywheel_assets.simulation.simulator import ShopSimulator

RETRY_STATUS = {429, 502, 503, 504}


class LiveShopError(RuntimeError):
    pass


def wait_until_ready(
    url: str, timeout_s: float = 120.0, alive: Callable[[], bool] | None = None
) -> None:
    """Wait for a starting service's /readyz to answer 200 (``alive``: whether the process
    starting it still runs, so a crash is reported at once instead of after the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if alive is not None and not alive():
            raise LiveShopError(f"the service at {url} exited while starting")
        if time.monotonic() > deadline:
            raise LiveShopError(f"the service at {url} was not ready within {timeout_s:.0f} s")
        time.sleep(0.2)


@dataclass
class LiveDayResult:
    sim_day: dt.date
    requests: int
    impressions: int
    feedback: int
    oracle_share: float
    purchase_rate: float  # expected purchases per request of what was shown
    versions: dict[str, int]
    p50_ms: float
    p99_ms: float


@dataclass
class HttpRanker:
    """The simulator's Ranker protocol over HTTP: one POST /rank per request. It reacts within
    sessions (``realtime``): the simulator sends each wave of requests, and ``observe`` posts
    the wave's feedback to /events before the next wave is ranked, as shoppers' clicks reach
    a live service between their page views."""

    client: httpx.Client
    k: int
    concurrency: int = 4
    retries: int = 5
    service_ids: dict[str, str] = field(default_factory=dict)  # simulator's -> service's id
    latencies_ms: list[float] = field(default_factory=list)
    realtime: bool = True
    feedback_sent: int = 0

    def observe(self, events: pd.DataFrame) -> None:
        feedback = events[events["event_type"] != "impression"]
        rows = [
            {
                "request_id": self.service_ids[rid],
                "event_type": etype,
                "item_id": item,
                "user_id": user,
                "session_id": session,
            }
            for rid, etype, item, user, session in zip(
                feedback["request_id"], feedback["event_type"], feedback["item_id"],
                feedback["user_id"], feedback["session_id"], strict=True,
            )
        ]  # fmt: skip
        self.feedback_sent += post_feedback(self.client, rows)

    def _post(self, body: dict) -> dict:
        delay = 0.2
        for attempt in range(self.retries + 1):
            t0 = time.perf_counter()
            try:
                r = self.client.post("/rank", json=body)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 200:
                    self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                    return r.json()
                error = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS:
                    raise LiveShopError(f"the service refused a ranking request: {error}")
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise LiveShopError(f"the service did not answer after {self.retries + 1} tries: {error}")

    def __call__(self, candidates: pd.DataFrame) -> pd.DataFrame:
        groups = list(candidates.groupby("request_id", sort=False))

        def rank(item: tuple[str, pd.DataFrame]) -> list[dict]:
            rid, g = item
            answer = self._post(
                {
                    "user_id": str(g["user_id"].iloc[0]),
                    "k": self.k,
                    "candidates": g["item_id"].astype(str).tolist(),
                    "session_id": str(g["session_id"].iloc[0]),
                }
            )
            self.service_ids[rid] = answer["request_id"]
            return [
                {
                    "request_id": rid,
                    "item_id": it["item_id"],
                    "position": pos,
                    "propensity": it["propensity"],
                    "model_version": answer["model_version"],
                    "variant": answer["variant"],
                }
                for pos, it in enumerate(answer["items"])
            ]

        with ThreadPoolExecutor(self.concurrency) as pool:
            rows = [r for rs in pool.map(rank, groups) for r in rs]
        return pd.DataFrame(rows)


def _write_export(
    df: pd.DataFrame, landing_dir: Path, source: str, day: dt.date, name: str
) -> None:
    folder = landing_dir / source / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}-{name}.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    df.to_json(tmp, orient="records", lines=True)
    tmp.replace(path)


def post_feedback(client: httpx.Client, events: list[dict], batch: int = 500) -> int:
    sent = 0
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        r = client.post("/events", json={"events": chunk})
        if r.status_code != 200:
            raise LiveShopError(
                f"the service refused feedback: HTTP {r.status_code}: {r.text[:300]}"
            )
        sent += r.json()["accepted"]
    return sent


def simulate_day(
    client: httpx.Client,
    sim: ShopSimulator,
    sim_day: dt.date,
    *,
    landing_dir: Path | None,
    concurrency: int = 4,
    today: dt.date | None = None,
) -> LiveDayResult:
    if landing_dir is not None:
        # Full exports each time: the day's partition knows every item the service may show.
        today = today or dt.datetime.now(dt.UTC).date()
        name = f"sim{sim_day:%Y%m%d}"
        _write_export(sim.catalog_records(sim_day, full=True), landing_dir, "catalog", today, name)
        _write_export(sim.user_records(sim_day, full=True), landing_dir, "users", today, name)
    ranker = HttpRanker(client, k=sim.config.slate_size, concurrency=concurrency)
    # the ranker posts each wave's feedback as it happens (HttpRanker.observe)
    result = sim.serve_day(sim_day, ranker)
    sent = ranker.feedback_sent
    lat = np.array(ranker.latencies_ms) if ranker.latencies_ms else np.array([np.nan])
    return LiveDayResult(
        sim_day=sim_day,
        requests=result.n_requests,
        impressions=len(result.served),
        feedback=sent,
        oracle_share=result.oracle_share,
        purchase_rate=result.expected_purchase_rate,
        versions=dict(
            collections.Counter(result.served.groupby("request_id")["model_version"].first())
        ),
        p50_ms=float(np.nanpercentile(lat, 50)),
        p99_ms=float(np.nanpercentile(lat, 99)),
    )
