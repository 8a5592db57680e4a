-- The day's Kafka events (up to the watermark) join the day's landing-file rows in raw_events;
-- source_file names the topic partition and line_no is the message offset, so every row
-- points to its source.
INSERT INTO raw_events (dt, event_id, event_type, event_time, user_id, item_id, session_id,
                        request_id, position, propensity, model_version, variant, price,
                        quantity, source_file, line_no)
SELECT dt, event_id, event_type, event_time, user_id, item_id, session_id,
       request_id, position, propensity, model_version, variant, price, quantity,
       'kafka://' || topic || '/' || CAST(kafka_partition AS VARCHAR), kafka_offset
FROM kafka_events
WHERE dt = :dt AND consumed_at <= :watermark
