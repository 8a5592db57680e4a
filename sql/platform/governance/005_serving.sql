-- Serving (the online_features export, and anything that answers requests from the
-- warehouse): reads features, catalog and the registry; writes nothing.
GRANT SELECT ON
    items, user_features, item_features, user_category_features, user_brand_features,
    region_category_features, region_brand_features, user_item_activity_daily,
    model_registry, model_aliases, experiments
TO {serving};
