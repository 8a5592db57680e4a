-- PostgreSQL only: indexes for the quality checks' lookups.
CREATE INDEX IF NOT EXISTS events_user_time ON events (user_id, event_time);
CREATE INDEX IF NOT EXISTS quarantine_releases_key ON quarantine_releases (dt, source_file, line_no);
CREATE INDEX IF NOT EXISTS score_samples_dt ON score_samples (dt, role);
