"""The web server's parts: the web chat and the dashboard."""
