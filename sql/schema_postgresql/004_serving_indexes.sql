-- PostgreSQL only: the request log's partition deletes and the latency guardrail's lookups.
CREATE INDEX IF NOT EXISTS served_requests_dt ON served_requests (dt, experiment_id);
