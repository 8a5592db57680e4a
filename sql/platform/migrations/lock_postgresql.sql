-- Two processes migrating one PostgreSQL warehouse at once wait for each other (the key is
-- arbitrary but fixed: "flywheel" in ASCII).
SELECT pg_advisory_xact_lock(7386111215191401)
