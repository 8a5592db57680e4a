SELECT event_type, COUNT(*) AS n FROM events WHERE dt = :dt GROUP BY event_type ORDER BY n DESC, event_type
