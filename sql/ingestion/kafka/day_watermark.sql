-- The newest Kafka batch that wrote rows of the day: raw_events copies up to it.
SELECT MAX(consumed_at) FROM kafka_batches WHERE dt = :dt
