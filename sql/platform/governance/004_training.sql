-- Training, evaluation and promotion: read features and training sets, write the registry
-- (models, evaluations, decisions, experiments, alias moves) and append to the audit trail.
GRANT SELECT ON
    events, items, users, served_requests,
    user_activity_daily, item_activity_daily, user_item_activity_daily,
    user_features, item_features, user_category_features, user_brand_features,
    region_category_features, region_brand_features, training_examples
TO {training};
GRANT SELECT, INSERT, UPDATE, DELETE ON
    model_registry, model_aliases, offline_evaluations, promotion_decisions, score_samples,
    experiments, experiment_results
TO {training};
-- Forecasting (its own job, the same stage role): reads what was sold, writes its forecasts,
-- backtests, replenishment advice and forecasters; moves the forecast_champion alias.
GRANT SELECT ON orders TO {training};
GRANT SELECT, INSERT, DELETE ON
    demand_forecasts, forecast_backtest, replenishment_plan, forecast_models
TO {training};
-- Purchase likelihood (its own job, the same stage role): reads activity and order lines,
-- writes its backtests, models and the day's probabilities; moves its champion alias.
GRANT SELECT, INSERT, DELETE ON
    purchase_likelihood, likelihood_backtest, likelihood_models
TO {training};
-- History is appended, never rewritten.
GRANT SELECT, INSERT ON alias_history, audit_log TO {training};
