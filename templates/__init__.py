"""Jinja2 templates of every user-visible text; one folder per locale."""
