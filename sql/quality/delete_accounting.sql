DELETE FROM ingestion_accounting WHERE dt = :dt AND source = :source
