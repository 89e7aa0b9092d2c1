"""The dashboard (大屏): login, overview, case pages, rankings, CSV."""
