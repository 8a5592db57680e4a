-- The login this session acts as (PostgreSQL), for refusals and the audit trail.
SELECT CAST(session_user AS TEXT)
