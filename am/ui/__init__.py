"""``am ui``: the terminal dashboard (Textual), imported only by ``am ui``.

``model`` turns am's state into table cells and safe text (pure), ``actions`` runs am's own
commands for the keys, ``app`` is the Textual application.
"""
