SELECT COUNT(*) FROM kafka_offsets
WHERE consumer = :consumer AND topic = :topic AND kafka_partition = :kafka_partition
