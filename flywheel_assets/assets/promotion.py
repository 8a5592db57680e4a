"""Evaluation and promotion: champion vs challenger on the same holdout, then the decision."""

import datetime as dt
import json
import os
import tempfile

import dagster as dg
import numpy as np
import pandas as pd

from .. import registry
from ..evaluation import OfflineMetrics, offline_metrics, promotion_rule
from ..feature_store import training_frame
from ..resources import FlywheelConfig, WarehouseResource
from ..training import LABELS, predict
from ..warehouse import load_sql
from .common import daily_asset, materialize_days, md_table, utcnow
from .training import challenger_model


def _champion_before(wh, conn, day: dt.date) -> str | None:
    value = wh.scalar(conn, load_sql("registry/champion_before"), dt=day)
    return None if value is None else str(value)


@dg.asset(
    **daily_asset("evaluation", {"python"}),
    deps=[challenger_model],
    description="Offline metrics of the day's challenger and of the champion on the same time-based holdout.",
)
def offline_evaluation(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        with wh.begin() as conn:
            challenger_version = wh.scalar(conn, load_sql("registry/model_for_day"), dt=day)
            champion_version = _champion_before(wh, conn, day)
            challenger = (
                registry.get_model(conn, str(challenger_version)) if challenger_version else None
            )
            champion = registry.get_model(conn, champion_version) if champion_version else None
        rows = []
        samples: list[pd.DataFrame] = []
        if challenger is not None and challenger.metrics.get("holdout_cutoff"):
            frame = training_frame(wh, day, day)
            holdout = frame[
                frame["event_time"] >= pd.Timestamp(challenger.metrics["holdout_cutoff"])
            ]
            label_col = LABELS[challenger.label]
            for role, rec in (("challenger", challenger), ("champion", champion)):
                if rec is None:
                    continue
                scores = predict(rec.load(), rec.schema, holdout)
                m = offline_metrics(holdout, scores, label_col)
                rows.append({"role": role, "model_version": rec.model_version, **m.as_dict()})
                samples.append(_score_sample(day, role, rec.model_version, scores))
        now = utcnow()
        with wh.begin() as conn:
            wh.run(conn, "registry/delete_score_samples", dt=day)
            for sample in samples:
                wh.insert_df(conn, "score_samples", sample)
            wh.run(conn, "registry/delete_evaluations", dt=day)
            for r in rows:
                wh.run(
                    conn,
                    "registry/insert_evaluation",
                    dt=day,
                    model_version=r["model_version"],
                    role=r["role"],
                    n_rows=r["n_rows"],
                    auc=_finite(r["auc"]),
                    log_loss=_finite(r["log_loss"]),
                    ndcg_at_10=_finite(r["ndcg_at_10"]),
                    snips_value=None,
                    at=now,
                )
        table = pd.DataFrame(rows) if rows else pd.DataFrame()
        meta: dict[str, object] = {"comparison": dg.MetadataValue.md(md_table(table))}
        for r in rows:
            for k in ("auc", "log_loss", "ndcg_at_10"):
                if _finite(r[k]) is not None:
                    meta[f"{r['role']}_{k}"] = dg.MetadataValue.float(float(r[k]))
        return dg.MaterializeResult(metadata=meta)

    return materialize_days(context, build)


# Scores kept per day and role for the score-drift check: enough for PSI deciles and KS.
SCORE_SAMPLE_SIZE = 20_000


def _score_sample(day: dt.date, role: str, version: str, scores: object) -> pd.DataFrame:
    values = np.asarray(scores, dtype=float)
    if len(values) > SCORE_SAMPLE_SIZE:
        # Seeded by the day: re-materialising keeps the same sample.
        rng = np.random.default_rng(day.toordinal())
        values = values[np.sort(rng.choice(len(values), SCORE_SAMPLE_SIZE, replace=False))]
    return pd.DataFrame({"dt": day, "role": role, "model_version": version, "score": values})


def _finite(x: float) -> float | None:
    return None if x is None or x != x else float(x)


def _metrics(df: pd.DataFrame, role: str) -> OfflineMetrics | None:
    sub = df[df["role"] == role]
    if sub.empty:
        return None
    r = sub.iloc[0]
    return OfflineMetrics(
        int(r["n_rows"]),
        float("nan") if r["auc"] is None else float(r["auc"]),
        float("nan") if r["log_loss"] is None else float(r["log_loss"]),
        float("nan") if r["ndcg_at_10"] is None else float(r["ndcg_at_10"]),
    )


@dg.asset(
    **daily_asset("promotion", {"python"}),
    deps=[offline_evaluation],
    description=(
        "The day's decision: the challenger replaces the champion only when it wins the "
        "offline gate. Every decision is recorded; every alias move is kept in alias_history."
    ),
)
def promotion_decision(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    def build(day: dt.date) -> dg.MaterializeResult | dict[str, object]:
        wh = warehouse.get()
        now = utcnow()
        with wh.begin() as conn:
            evals = wh.query_df(conn, load_sql("registry/evaluations_for_day"), dt=day)
            before = _champion_before(wh, conn, day)
            challenger = evals.loc[evals["role"] == "challenger", "model_version"]
            challenger_version = None if challenger.empty else str(challenger.iloc[0])
            decision = promotion_rule(
                _metrics(evals, "challenger"),
                _metrics(evals, "champion"),
                min_log_loss_gain=flywheel.min_log_loss_gain,
                max_ndcg_drop=flywheel.max_ndcg_drop,
            )
            after = challenger_version if decision.decision == "promote" else before
            later = wh.query_df(conn, load_sql("registry/latest_decision_after"), dt=day)
            moved = False
            if later.empty:
                moved = registry.move_alias(
                    conn,
                    registry.CHAMPION,
                    after,
                    actor="promotion_decision",
                    reason=f"{day}: {decision.reason}",
                    now=now,
                    day=day,
                )
            else:
                # A later day has decided already: re-deciding an old day must not move the
                # champion backwards in time; the record is refreshed, the alias is not.
                context.log.warning(
                    f"a decision for {later.iloc[0]['dt']} exists: champion alias left as it is"
                )
            wh.run(conn, "registry/delete_decision", dt=day)
            wh.run(
                conn,
                "registry/insert_decision",
                dt=day,
                challenger=challenger_version,
                champion_before=before,
                champion_after=after,
                decision=decision.decision,
                reason=decision.reason,
                at=now,
            )
        return dg.MaterializeResult(
            metadata={
                "decision": decision.decision,
                "reason": decision.reason,
                "challenger": str(challenger_version),
                "champion_before": str(before),
                "champion_after": str(after),
                "alias_moved": moved,
                "evaluation": dg.MetadataValue.md(md_table(evals)),
            }
        )

    return materialize_days(context, build)


@dg.asset(
    **daily_asset("promotion", {"python"}),
    deps=[promotion_decision],
    description="The model that serves the next day: published to FLYWHEEL_HOME/serving/champion.json for the serving side.",
)
def champion_model(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, flywheel: FlywheelConfig
) -> dg.MaterializeResult:
    wh = warehouse.get()
    with wh.begin() as conn:
        version = registry.get_alias(conn, registry.CHAMPION)
        record = registry.get_model(conn, version) if version else None
    pointer = {
        "model_version": version,
        "artefact_uri": record.artefact_uri if record else None,
        "sha256": record.sha256 if record else None,
        "published_for": context.partition_key,
    }
    serving_dir = flywheel.paths().home / "serving"
    serving_dir.mkdir(parents=True, exist_ok=True)
    # Write-then-rename: a reader never sees a half-written pointer.
    fd, tmp = tempfile.mkstemp(dir=serving_dir, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(pointer, fh, indent=2)
    os.replace(tmp, serving_dir / "champion.json")
    return dg.MaterializeResult(
        metadata={
            "model_version": str(version),
            "artefact_uri": str(pointer["artefact_uri"]),
            "training_partitions": ", ".join(record.training_partitions) if record else "",
        }
    )
