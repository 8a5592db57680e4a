-- The newest commit stamp of any batch: the next one must be later, so raw_events' watermark
-- (the newest stamp of a day) separates what it copied from what came after, whatever clocks do.
SELECT MAX(consumed_at) FROM kafka_batches
