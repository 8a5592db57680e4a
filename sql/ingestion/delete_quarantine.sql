-- Clear one stage's quarantine rows of a day and source before that stage rewrites them.
DELETE FROM quarantine WHERE dt = :dt AND source = :source AND stage = :stage
