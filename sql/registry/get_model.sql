SELECT model_version, dt, artefact_uri, sha256, objective, label, params_json, metrics_json,
       features_json, training_partitions_json, n_train_rows, n_valid_rows, code_version,
       champion_at_training, partition_rows_json, training_spec_json, base_model_version,
       created_at, created_by
FROM model_registry
WHERE model_version = :model_version
