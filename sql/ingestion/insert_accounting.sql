INSERT INTO ingestion_accounting (dt, source, rows_read, rows_accepted, rows_quarantined,
                                  rows_duplicate, recorded_at)
VALUES (:dt, :source, :rows_read, :rows_accepted, :rows_quarantined, :rows_duplicate, :now)
