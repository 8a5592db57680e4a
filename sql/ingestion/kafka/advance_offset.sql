-- Compare-and-set: moves the offset only from where this batch started, so two consumers
-- racing on one partition cannot both commit the same messages (the loser's update hits 0 rows).
UPDATE kafka_offsets
SET next_offset = :next_offset, updated_at = :now
WHERE consumer = :consumer AND topic = :topic AND kafka_partition = :kafka_partition
  AND next_offset = :expected
