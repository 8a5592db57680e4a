SELECT model_version, role, n_rows, auc, log_loss, ndcg_at_10, ece
FROM offline_evaluations
WHERE dt = :dt
