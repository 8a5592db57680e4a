INSERT INTO forecast_models (model_version, dt, artefact_uri, sha256, params_json, lineage_json,
                             n_train_rows, code_version, created_at, created_by)
VALUES (:model_version, :dt, :artefact_uri, :sha256, :params_json, :lineage_json,
        :n_train_rows, :code_version, :created_at, :created_by)
