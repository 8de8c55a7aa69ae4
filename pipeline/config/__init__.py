"""Parameters and options, each declared once: the validation of a value
(``params``) and the option table the CLI, job files and the library share (``options``).

May import: ``pipeline.io`` (URL rules, storage options) and ``pipeline.errors``.
"""
