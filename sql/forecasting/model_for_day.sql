-- The model fitted for day :dt (the newest, should the day have been re-run); none when the
-- day refitted bytes registered on an earlier day (the alias's move for the day names it).
SELECT model_version FROM forecast_models WHERE dt = :dt ORDER BY created_at DESC LIMIT 1
