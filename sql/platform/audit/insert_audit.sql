-- The only statement that writes audit_log: it is append-only.
INSERT INTO audit_log (logged_at, actor, action, subject, details, why)
VALUES (:logged_at, :actor, :action, :subject, :details, :why)
