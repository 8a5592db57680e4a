-- Where this session's JIT setting comes from (default, configuration file, client, database,
-- user, ...): the warehouse turns JIT off only where nobody chose it (decision 88).
SELECT source FROM pg_settings WHERE name = 'jit'
