"""A griffe extension for the API reference: turns the Sphinx roles of fnnet's
docstrings (``:func:`name```, ``:class:`~fnnet.nn.Module```, ...) into Markdown code
spans, and a paragraph's closing ``::`` (a reStructuredText literal block) into ``:``,
so the Google-style docstrings render as Markdown. Used by mkdocs.yml only.
"""
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):`~?([^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::(?=\n)")


def _short(match: re.Match) -> str:
    target = match.group(1)
    if match.group(0).split("`", 1)[1].startswith("~"):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring as it is loaded."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_short, obj.docstring.value)
            obj.docstring.value = _LITERAL.sub(":", text)
