"""The serving pointer: what the ranking service serves, published next to the feature bundles."""

import json
from pathlib import Path

from flywheel_assets import registry
from flywheel_assets.platform.files import write_atomically
from flywheel_assets.platform.warehouse import Warehouse


def publish_serving_pointer(wh: Warehouse, home: Path, published_for: str) -> dict[str, object]:
    """Write FLYWHEEL_HOME/serving/champion.json: the champion, and the running experiment's
    challenger with its share, for the serving side. Write-then-rename: a reader never sees a
    half-written pointer."""
    with wh.begin() as conn:
        version = registry.get_alias(conn, registry.CHAMPION)
        record = registry.get_model(conn, version) if version else None
        exp = registry.open_experiment(conn)
        challenger = registry.get_model(conn, exp.challenger) if exp else None
    pointer = {
        "model_version": version,
        "artefact_uri": record.artefact_uri if record else None,
        "sha256": record.sha256 if record else None,
        "training_partitions": record.training_partitions if record else [],
        # what the ranking service needs to build the model's input (flywheel serve)
        "feature_schema": json.loads(record.schema.to_json()) if record else None,
        "experiment": None
        if exp is None or challenger is None
        else {
            "experiment_id": exp.experiment_id,
            "start_dt": exp.start_dt.isoformat(),
            "traffic_share": exp.traffic_share,
            "model_version": challenger.model_version,
            "artefact_uri": challenger.artefact_uri,
            "sha256": challenger.sha256,
            "feature_schema": json.loads(challenger.schema.to_json()),
        },
        "published_for": published_for,
    }
    # readers (the ranking service) see the old pointer or the new one, never a part
    write_atomically(home / "serving" / "champion.json", json.dumps(pointer, indent=2).encode())
    return pointer
