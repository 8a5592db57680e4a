-- Transformation (features, training sets, the daily health row): reads accepted events,
-- catalog and users; never raw events, quarantine payloads or the Kafka tables.
GRANT SELECT ON events, items, users TO {transformation};
GRANT SELECT, INSERT, DELETE ON
    user_activity_daily, item_activity_daily, user_item_activity_daily,
    user_features, item_features, user_category_features, user_brand_features,
    region_category_features, region_brand_features, training_examples, flywheel_health
TO {transformation};
-- The health row names the champion and the day's decision.
GRANT SELECT ON
    model_registry, model_aliases, alias_history, promotion_decisions, experiments,
    experiment_results, served_requests, simulator_days
TO {transformation};
