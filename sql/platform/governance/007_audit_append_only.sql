-- The audit trail is append-only for everyone but its owner: whoever may write it may only
-- INSERT (and read); UPDATE, DELETE and TRUNCATE stay with the owner. Re-stated last so no
-- earlier grant can widen it.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, {ingestion}, {transformation}, {training}, {serving}, {analyst};
REVOKE UPDATE, DELETE, TRUNCATE ON alias_history FROM PUBLIC, {ingestion}, {transformation}, {training}, {serving}, {analyst};
REVOKE UPDATE, DELETE, TRUNCATE ON quarantine_releases FROM PUBLIC, {ingestion}, {transformation}, {training}, {serving}, {analyst};
