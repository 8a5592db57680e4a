"""Who will buy: a user-level purchase-likelihood model for a shop's marketing (docs/likelihood.md).

Plain modules (pandas frames in, frames out; no Dagster, no warehouse, no environment reads):

- ``history``: a shop's per-user daily activity and purchases, point-in-time snapshots of user
  features and the labels that arrive as the days pass;
- ``model``: XGBoost per horizon, calibrated (isotonic or Platt, chosen on held-out days),
  stored to the byte with its lineage;
- ``metrics``: AUC, log loss, calibration error and the reliability table, lift and gains;
- ``rfm``: the recency-frequency-monetary baseline;
- ``backtest``: the time-based backtest of the model against the baseline.
"""
