-- Purchase events may say how many units were bought (docs/orders.md, "Units from events"):
-- optional, a whole number >= 1; a purchase without one is one unit. It travels with the
-- event from the landing files or the topic to `events`, like price.
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS quantity INTEGER;
ALTER TABLE kafka_events ADD COLUMN IF NOT EXISTS quantity INTEGER;
ALTER TABLE events ADD COLUMN IF NOT EXISTS quantity INTEGER;
ALTER TABLE quarantine_releases ADD COLUMN IF NOT EXISTS quantity INTEGER;
