-- One registered forecaster by version.
SELECT model_version, dt, artefact_uri, sha256, params_json, lineage_json, n_train_rows,
       code_version, created_at, created_by
FROM forecast_models
WHERE model_version = :model_version
