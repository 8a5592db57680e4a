SELECT MAX(dt) FROM model_registry
