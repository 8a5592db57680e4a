-- The 80% interval's coverage two ways (docs/forecasting.md, Intervals for counts):
-- coverage_80 is the share of jittered counts y + U inside the interval (a calibrated
-- interval scores 0.8); coverage_80_discrete the share of the counts themselves, which
-- exceeds 0.8 for any calibrated interval where most days sell nothing.
ALTER TABLE forecast_backtest ADD COLUMN IF NOT EXISTS coverage_80_discrete DOUBLE PRECISION;
