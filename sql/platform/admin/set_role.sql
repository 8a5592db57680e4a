-- Act as :role until the end of this transaction (SET LOCAL ROLE, with the role as a bound
-- parameter); PostgreSQL refuses a role the session's user is not a member of.
SELECT set_config('role', :role, true)
