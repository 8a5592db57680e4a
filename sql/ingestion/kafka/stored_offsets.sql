SELECT kafka_partition, next_offset FROM kafka_offsets WHERE consumer = :consumer AND topic = :topic
