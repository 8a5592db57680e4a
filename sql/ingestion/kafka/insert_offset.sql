-- First batch of a partition; the primary key refuses a concurrent first commit.
INSERT INTO kafka_offsets (consumer, topic, kafka_partition, next_offset, updated_at)
VALUES (:consumer, :topic, :kafka_partition, :next_offset, :now)
