"""The model registry on warehouse tables: versions with lineage, aliases with full history,
experiments and their looks, offline evaluations, the daily decisions, and rollback.

Every statement in ``sql/registry/`` (experiments in ``sql/registry/experiments/``) runs through these modules; callers
use the names re-exported here (``registry.get_alias(conn, registry.CHAMPION)``).
"""

from flywheel_assets.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    alias_history,
    get_alias,
    move_alias,
    moved_by_hand_since,
)
from flywheel_assets.registry.decisions import (
    DECIDER,
    apply_decision,
    champion_for_day,
    day_decisions,
    decision_state,
    get_decision,
    latest_decision_after,
    latest_decision_day,
    replace_decision,
)
from flywheel_assets.registry.evaluations import (
    evaluations_for_day,
    replace_evaluations,
    replace_score_samples,
)
from flywheel_assets.registry.experiments import (
    delete_looks,
    end_experiment,
    experiment_results,
    experiment_serving_on,
    open_experiment,
    record_look,
    recorded_look,
    served_latency,
    start_experiment,
    undo_decided_on,
    user_metrics,
    users_per_day,
)
from flywheel_assets.registry.models import (
    ModelRecord,
    get_model,
    latest_model_day,
    model_for_day,
    register_model,
)
from flywheel_assets.registry.rollback import RollbackError, previous_champion, rollback

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DECIDER",
    "ModelRecord",
    "RollbackError",
    "alias_history",
    "apply_decision",
    "champion_for_day",
    "day_decisions",
    "decision_state",
    "delete_looks",
    "end_experiment",
    "evaluations_for_day",
    "experiment_results",
    "experiment_serving_on",
    "get_alias",
    "get_decision",
    "get_model",
    "latest_decision_after",
    "latest_decision_day",
    "latest_model_day",
    "model_for_day",
    "move_alias",
    "moved_by_hand_since",
    "open_experiment",
    "previous_champion",
    "record_look",
    "recorded_look",
    "register_model",
    "replace_decision",
    "replace_evaluations",
    "replace_score_samples",
    "rollback",
    "served_latency",
    "start_experiment",
    "undo_decided_on",
    "user_metrics",
    "users_per_day",
]
