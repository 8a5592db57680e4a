-- PostgreSQL only: the real-time features' point-in-time lookups (sql/features/session_events.sql)
-- find a request's session events by session and time.
CREATE INDEX IF NOT EXISTS events_session_time ON events (session_id, event_time);
