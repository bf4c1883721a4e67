"""kitpose's built-in plugins.

Each module here is one plugin, registered through the ``kitpose`` entry-point
group in kitpose's own pyproject.toml exactly as a third-party package would do.
Block one with ``kitpose -p no:NAME ...``.
"""
