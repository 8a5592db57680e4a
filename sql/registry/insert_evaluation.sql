INSERT INTO offline_evaluations (dt, model_version, role, n_rows, auc, log_loss, ndcg_at_10,
                                 ece, snips_value, evaluated_at)
VALUES (:dt, :model_version, :role, :n_rows, :auc, :log_loss, :ndcg_at_10, :ece, :snips_value,
        :at)
