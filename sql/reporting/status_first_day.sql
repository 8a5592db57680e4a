-- The first day that landed any events (`flywheel status`: days before it are not missing).
SELECT MIN(dt) FROM ingested_files WHERE source = 'events'
