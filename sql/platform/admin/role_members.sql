-- Who is a member of which of the deployment's roles (granted by whom), for the audit trail.
SELECT r.rolname AS role_name, m.rolname AS member, g.rolname AS grantor
FROM pg_auth_members a
JOIN pg_roles r ON r.oid = a.roleid
JOIN pg_roles m ON m.oid = a.member
JOIN pg_roles g ON g.oid = a.grantor
WHERE r.rolname = ANY(:names)
ORDER BY r.rolname, m.rolname
