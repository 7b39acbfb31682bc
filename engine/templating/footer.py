"""The footer the engine adds to every message: sender, postal address, unsubscribe.

Authors never write it, so no template can forget the law's requirements. The
words follow the template's language; an unknown language gets English.
"""

from __future__ import annotations

_UNSUBSCRIBE = {
    "en": "Unsubscribe",
    "da": "Afmeld",
    "sv": "Avregistrera",
    "nb": "Meld deg av",
    "no": "Meld deg av",
    "de": "Abmelden",
    "fi": "Peru tilaus",
    "nl": "Afmelden",
}

# Jinja sources; WORD is replaced by the unsubscribe word of the template's language.
TEXT_FOOTER = (
    "\n\n-- \n{{ company.name }}, {{ company.postal_address }}\nWORD: {{ unsubscribe_url }}\n"
)
_FOOTER_CELL = (
    "padding:16px 24px;font-family:Arial,sans-serif;font-size:12px;line-height:18px;"
    "color:#6b7280;text-align:center"
)
HTML_FOOTER = f"""
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
<tr><td style="{_FOOTER_CELL}">
{{{{ company.name }}}} &middot; {{{{ company.postal_address }}}}<br>
<a href="{{{{ unsubscribe_url }}}}" style="color:#6b7280;text-decoration:underline">WORD</a>
</td></tr></table>
<img src="{{{{ open_url }}}}" width="1" height="1" alt="" style="display:block;border:0;width:1px">
"""


def unsubscribe_word(language: str) -> str:
    """The word for the unsubscribe link in ``language`` (``da_DK`` -> Danish)."""
    return _UNSUBSCRIBE.get(language.split("_")[0].lower(), _UNSUBSCRIBE["en"])


def text_footer(language: str) -> str:
    """The Jinja source of the plain-text footer."""
    return TEXT_FOOTER.replace("WORD", unsubscribe_word(language))


def html_footer(language: str) -> str:
    """The Jinja source of the HTML footer, with the open-tracking pixel."""
    return HTML_FOOTER.replace("WORD", unsubscribe_word(language))
