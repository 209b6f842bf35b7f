"""MkDocs hook: render the docstrings' Sphinx roles as plain code.

The package's docstrings cross-reference with Sphinx roles (``:func:`x_to_z```,
``:class:`~latentprobe.sweep.ResumableSweep```), which Markdown shows literally. This hook, run by
``mkdocs build`` (``hooks:`` in ``mkdocs.yml``), drops the role and the leading ``~``, and shortens
a ``~``-prefixed path to its last part, as Sphinx does.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub(_plain, html)
