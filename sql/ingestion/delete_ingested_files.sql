DELETE FROM ingested_files WHERE dt = :dt AND source = :source
