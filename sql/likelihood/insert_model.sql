INSERT INTO likelihood_models (model_version, dt, artefact_uri, sha256, params_json,
                               lineage_json, metrics_json, code_version, created_at, created_by)
VALUES (:model_version, :dt, :artefact_uri, :sha256, :params_json, :lineage_json,
        :metrics_json, :code_version, :created_at, :created_by)
