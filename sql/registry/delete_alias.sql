DELETE FROM model_aliases WHERE alias = :alias
