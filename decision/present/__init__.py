"""The words and drawings of results, shared by the ``decision`` commands and the console: text, HTML, inline SVG.

Pure: it renders what the core, store and service computed, never recomputes it.
"""
