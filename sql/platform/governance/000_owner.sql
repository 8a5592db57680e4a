-- Run first, as the administrator running `flywheel grants` (a member of {owner}): the owner
-- role may create in the schema and owns every flywheel table, so migrations run as it and
-- only it may rewrite history (docs/security.md).
GRANT USAGE, CREATE ON SCHEMA {schema} TO {owner};
