-- Per topic partition, what the topic delivered for the day up to the watermark, as
-- ingested_files rows (the Kafka counterpart of a landing file).
SELECT topic, kafka_partition,
       SUM(rows_read) AS rows_read,
       SUM(rows_accepted) AS rows_accepted,
       SUM(rows_quarantined) AS rows_quarantined,
       MIN(first_offset) AS first_offset,
       MAX(last_offset) AS last_offset
FROM kafka_batches
WHERE dt = :dt AND consumed_at <= :watermark
GROUP BY topic, kafka_partition
ORDER BY topic, kafka_partition
