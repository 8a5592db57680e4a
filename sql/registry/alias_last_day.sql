-- The newest day :alias was moved for (NULL: never moved for a day).
SELECT MAX(dt) FROM alias_history WHERE alias = :alias
