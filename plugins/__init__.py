"""kitpose's built-in plugins, one package each.

Every package here is one plugin: its ``__init__.py`` holds only the plugin's hooks
(``kitpose_register`` with lazy ``"module:attr"`` references, or command hooks), and its
modules hold the code. Each is registered through the ``kitpose`` entry-point group in
kitpose's own pyproject.toml exactly as a third-party package would do; the entry-point
name is the plugin's name. Block one with ``kitpose -p no:NAME ...``.

``monitors/figures/`` and ``monitors/visdom/`` are plugins of their own (``figures``,
``visdom``) that live beside the ``monitors`` plugin's console and JSON-lines monitors.
"""
