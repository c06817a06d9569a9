"""Monitoring: prediction records and their store, batch scoring, the drift reference,
Evidently drift checks, alerts, and the ModelMonitor facade the application uses."""
