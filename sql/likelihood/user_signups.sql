-- Every delivered user row up to :to_dt with its signup date (the snapshot takes, per user,
-- the latest delivery up to its own day).
SELECT user_id, dt, signup_date
FROM users
WHERE dt <= :to_dt AND signup_date IS NOT NULL
ORDER BY user_id, dt
