-- Released (fixed) rows re-join raw_events of their day, at the source_file and line_no of the
-- quarantined row they fix, for as long as that quarantine row exists (a file that no longer
-- has the line, or now passes by itself, leaves its release unused rather than doubled).
INSERT INTO raw_events (dt, event_id, event_type, event_time, user_id, item_id, session_id,
                        request_id, position, propensity, model_version, variant, price,
                        quantity, source_file, line_no)
SELECT r.dt, r.event_id, r.event_type, r.event_time, r.user_id, r.item_id, r.session_id,
       r.request_id, r.position, r.propensity, r.model_version, r.variant, r.price,
       r.quantity, r.source_file, r.line_no
FROM quarantine_releases r
WHERE r.dt = :dt
  AND EXISTS (SELECT 1 FROM quarantine q
              WHERE q.dt = r.dt AND q.source = 'events' AND q.stage IN ('ingestion', 'kafka')
                AND q.source_file = r.source_file AND q.line_no = r.line_no)
