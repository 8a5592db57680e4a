-- Whether the session's user has :role's rights (inherits them, or is a superuser). USAGE, not
-- MEMBER: on PostgreSQL 16 a CREATEROLE user is an ADMIN-only member of the roles it creates,
-- which gives it none of their rights.
SELECT pg_has_role(current_user, :role, 'USAGE')
