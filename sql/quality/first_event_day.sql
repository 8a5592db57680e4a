-- The first day with accepted events: where the drift warm-up starts. (Accepted, not raw:
-- the feature checks act as the transformation role, which never reads raw events.)
SELECT MIN(dt) FROM events
