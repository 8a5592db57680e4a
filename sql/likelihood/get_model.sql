-- One registered purchase-likelihood model by version.
SELECT model_version, dt, artefact_uri, sha256, params_json, lineage_json, metrics_json,
       code_version, created_at, created_by
FROM likelihood_models
WHERE model_version = :model_version
