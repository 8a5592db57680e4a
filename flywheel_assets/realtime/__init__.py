"""Real-time features: what a session did in the hour before a request (docs/realtime.md)."""
