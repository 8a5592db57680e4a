-- Whether the session's user may act as :role (a member of it, or a superuser).
SELECT pg_has_role(current_user, :role, 'MEMBER')
