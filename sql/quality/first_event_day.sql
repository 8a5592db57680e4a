-- The first day with raw events: where the drift warm-up starts.
SELECT MIN(dt) FROM raw_events
