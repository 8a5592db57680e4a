-- Real-time features (docs/realtime.md): a training example remembers its request's session, so
-- the point-in-time SQL can count what the session did in the hour before the request.
-- Examples written before this migration have none: their real-time features are missing.
ALTER TABLE training_examples ADD COLUMN session_id VARCHAR;
