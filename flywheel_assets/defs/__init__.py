"""Dagster glue: thin assets and checks over the plain modules of flywheel_assets."""

import warnings

import dagster as dg

# backfill_policy and allow_nonexistent_upstream_partitions are marked beta; we rely on both
# deliberately (docs/decisions.md) and do not want every CLI call to print them.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
