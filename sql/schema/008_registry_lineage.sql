-- Lineage a model can be re-trained from (issue 7): rows learnt per partition, the training
-- specification (window, holdout, label, bias correction, parameters, rounds) and the model a
-- warm start continued from. Added by ALTER so existing registries keep their rows.
ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS partition_rows_json TEXT;
ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS training_spec_json TEXT;
ALTER TABLE model_registry ADD COLUMN IF NOT EXISTS base_model_version VARCHAR;
